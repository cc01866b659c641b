// GGUF -> GGUF at another precision (mlamoe quantize). Metadata is copied (with a new
// general.file_type); each tensor gets the type the recipe chooses for it
// (quant_plan.h), streamed through float32 in bounded chunks, in parallel. A tensor
// already in its target type is copied byte for byte, never re-rounded.
#pragma once
#include <string>

#include "convert/hf_convert.h"
#include "convert/quant_plan.h"

namespace mlamoe {

struct QuantizeOptions {
  std::string in_path, out_path;
  QuantRecipe recipe;
};

ConvertStats quantize_gguf(const QuantizeOptions& opts);

}  // namespace mlamoe
