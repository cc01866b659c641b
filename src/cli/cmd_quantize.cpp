// mlamoe quantize: a GGUF model at another precision.
#include <cstdio>

#include "cli/command.h"
#include "cli/recipe_flag.h"
#include "common/progress.h"
#include "convert/quantize.h"

namespace mlamoe::cli {

static int cmd_quantize(int argc, char** argv) {
  CLI::App app{"Write a GGUF model at another precision"};
  QuantizeOptions o;
  app.add_option("in", o.in_path, "input GGUF")->required();
  app.add_option("out", o.out_path, "output GGUF")->required();
  add_recipe_option(app, "type", o.recipe)->required();
  return parse_and_run(app, argc, argv, [&] {
    ConvertStats s = quantize_gguf(o);
    std::fprintf(stderr, "quantized %s -> %s (%s): %s -> %s in %.2f s\n", o.in_path.c_str(), o.out_path.c_str(),
                 o.recipe.name().c_str(), human_bytes(double(s.bytes_read)).c_str(),
                 human_bytes(double(s.bytes_written)).c_str(), s.seconds);
    return 0;
  });
}

MLAMOE_COMMAND("quantize", "write a GGUF model at another precision (f16 ... q4_K_M, q5_K_M)", cmd_quantize);

}  // namespace mlamoe::cli
