// mlamoe quantize: a GGUF model at another precision.
#include <cstdio>

#include "cli/command.h"
#include "common/progress.h"
#include "convert/quantize.h"

namespace mlamoe::cli {

static int cmd_quantize(int argc, char** argv) {
  CLI::App app{"Write a GGUF model at another precision"};
  QuantizeOptions o;
  std::string type;
  app.add_option("in", o.in_path, "input GGUF")->required();
  app.add_option("out", o.out_path, "output GGUF")->required();
  app.add_option("type", type, "f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K or q4_K_M")->required();
  return parse_and_run(app, argc, argv, [&] {
    o.recipe = parse_recipe(type);
    ConvertStats s = quantize_gguf(o);
    std::fprintf(stderr, "quantized %s -> %s (%s): %s -> %s in %.2f s\n", o.in_path.c_str(), o.out_path.c_str(),
                 o.recipe.name().c_str(), human_bytes(double(s.bytes_read)).c_str(),
                 human_bytes(double(s.bytes_written)).c_str(), s.seconds);
    return 0;
  });
}

MLAMOE_COMMAND("quantize", "write a GGUF model at another precision (f16 ... q4_K_M)", cmd_quantize);

}  // namespace mlamoe::cli
