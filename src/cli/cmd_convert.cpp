// mlamoe convert: a Hugging Face DeepSeek-V2/V3 checkpoint to GGUF, quantized in one pass.
#include <cstdio>

#include "cli/command.h"
#include "cli/recipe_flag.h"
#include "common/progress.h"
#include "convert/hf_convert.h"

namespace mlamoe::cli {

static int cmd_convert(int argc, char** argv) {
  CLI::App app{"Convert a Hugging Face DeepseekV2/V3ForCausalLM checkpoint (safetensors) to GGUF"};
  ConvertOptions o;
  app.add_option("hf_dir", o.hf_dir, "checkpoint directory (config.json, *.safetensors)")->required();
  app.add_option("out", o.out_path, "output GGUF file")->required();
  add_recipe_option(app, "--type", o.recipe);
  app.add_flag("--no-mtp", o.no_mtp, "drop the multi-token-prediction modules (V3)");
  return parse_and_run(app, argc, argv, [&] {
    ConvertStats s = convert_hf(o);
    std::fprintf(stderr, "converted %s -> %s (%s): read %s, wrote %s in %.2f s (%.3f GB/s read)\n", o.hf_dir.c_str(),
                 o.out_path.c_str(), o.recipe.name().c_str(), human_bytes(double(s.bytes_read)).c_str(),
                 human_bytes(double(s.bytes_written)).c_str(), s.seconds, double(s.bytes_read) / s.seconds / 1e9);
    return 0;
  });
}

MLAMOE_COMMAND("convert", "convert a Hugging Face DeepSeek checkpoint to GGUF", cmd_convert);

}  // namespace mlamoe::cli
