// The precision of the GGUF a command writes (convert, gen-random, quantize), one
// option spelled the same everywhere.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "convert/quant_plan.h"

namespace mlamoe::cli {

// Registers `name` ("--type", or "type" for a positional) filling `recipe` through
// parse_recipe: an unknown type is an Error naming the accepted ones. Unset, `recipe`
// keeps its value (QuantRecipe's default is f32).
inline CLI::Option* add_recipe_option(CLI::App& app, const std::string& name, QuantRecipe& recipe) {
  return app.add_option_function<std::string>(
      name, [&recipe](const std::string& type) { recipe = parse_recipe(type); },
      "f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K or q4_K_M");
}

}  // namespace mlamoe::cli
