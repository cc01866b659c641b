// Registration of the trainer's commands (train, grpo, eval): with the trainer built
// (-DMLAMOE_TRAIN=ON, libtorch) the command itself; without it the command still
// exists and says in one line how to get it.
#pragma once
#include "cli/command.h"
#include "common/error.h"

namespace mlamoe::cli {

[[noreturn]] inline int trainer_unavailable(int, char**) {
  fail("this mlamoe was built without the trainer (configure with -DMLAMOE_TRAIN=ON and libtorch-dev)");
}

}  // namespace mlamoe::cli

// MLAMOE_TRAINER_COMMAND("grpo", "summary", run_grpo): `fn` is only named when the
// trainer is built, so it may live inside #ifdef MLAMOE_HAVE_TRAIN.
#ifdef MLAMOE_HAVE_TRAIN
#define MLAMOE_TRAINER_COMMAND(name, summary, fn) MLAMOE_COMMAND(name, summary, fn)
#else
#define MLAMOE_TRAINER_COMMAND(name, summary, fn) \
  MLAMOE_COMMAND(name, summary " (needs a build with -DMLAMOE_TRAIN=ON)", ::mlamoe::cli::trainer_unavailable)
#endif
