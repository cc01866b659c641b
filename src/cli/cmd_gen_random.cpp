// mlamoe gen-random: a random-weight DeepSeek-V2/V3 model of any shape, for tests
// and benchmarks.
#include "cli/command.h"
#include "cli/recipe_flag.h"
#include "convert/gen_random.h"

namespace mlamoe::cli {

static int cmd_gen_random(int argc, char** argv) {
  CLI::App app{"Write a random-weight model of a DeepSeek-V2/V3 shape given by a Hugging Face config.json"};
  GenRandomOptions o;
  app.add_option("--config", o.config_path, "Hugging Face config.json")->required();
  app.add_option("--out,-o", o.out_path, "output GGUF file")->required();
  add_recipe_option(app, "--type", o.recipe);
  app.add_option("--layers", o.layers, "keep only the first N layers");
  app.add_option("--vocab", o.vocab_path, "copy the tokenizer of this GGUF vocabulary");
  app.add_option("--seed", o.seed, "random seed (same seed, same file)");
  app.add_flag("--legacy-kv-b", o.legacy_kv_b, "store the older single attn_kv_b instead of attn_k_b/attn_v_b");
  return parse_and_run(app, argc, argv, [&] {
    gen_random(o);
    return 0;
  });
}

MLAMOE_COMMAND("gen-random", "write a random-weight model of any DeepSeek-V2/V3 shape", cmd_gen_random);

}  // namespace mlamoe::cli
