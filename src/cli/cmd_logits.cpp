// mlamoe logits: run a whole token sequence at once and write every position's logits
// (little-endian float32, n_tokens × n_vocab) — the command the reference checks use.
#include <cstdio>

#include "cli/command.h"
#include "cli/common_flags.h"
#include "common/error.h"
#include "common/files.h"
#include "common/parse.h"

namespace mlamoe::cli {
namespace {

int run_logits(int argc, char** argv) {
  CLI::App app{"Run a token sequence and write the logits of every position"};
  ModelFlags mf;
  mf.add_to(app);
  KvFlags kf;
  kf.add_to(app, /*with_session=*/false);
  std::string tokens_arg, out;
  bool stepwise = false;
  app.add_option("--tokens", tokens_arg, "comma-separated token ids")->required();
  app.add_option("--out", out, "output file: float32, n_tokens × n_vocab")->required();
  app.add_flag("--stepwise", stepwise, "decode token by token through the KV cache instead of one pass");
  return parse_and_run(app, argc, argv, [&] {
    std::vector<int32_t> tokens = parse_token_list(tokens_arg);
    if (tokens.empty()) fail("--tokens: no token ids given");
    auto model = mf.load();
    auto kv = kf.make_cache(*model);
    Engine engine(*model, mf.engine_options(*model), kv);
    std::vector<float> logits;
    if (stepwise) {
      for (size_t i = 0; i < tokens.size(); ++i) {
        Batch b;
        b.add(tokens[i], static_cast<int32_t>(i), 0);
        auto row = engine.forward(b);
        logits.insert(logits.end(), row.begin(), row.end());
      }
    } else {
      Batch b;
      for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], static_cast<int32_t>(i), 0);
      logits = engine.forward(b);
    }
    if (mf.verbose) std::fprintf(stderr, "%s\n", describe_kv(kv->stats()).c_str());
    AtomicFile f(out);
    f.write(logits.data(), logits.size() * sizeof(float));
    f.commit();
    std::fprintf(stderr, "wrote %zu × %lld logits to %s\n", tokens.size(),
                 static_cast<long long>(model->config().vocab_size), out.c_str());
    return 0;
  });
}

}  // namespace
MLAMOE_COMMAND("logits", "run a token sequence, write every position's logits (float32)", run_logits);
}  // namespace mlamoe::cli
