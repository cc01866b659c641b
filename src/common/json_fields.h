// Fields of a JSON object from outside (a Hugging Face config.json): a parse error, a
// non-object or a missing required field is one Error line naming the file and field.
// Shared by ModelConfig (model/config.cpp) and the planner's ModelShape.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"

namespace mlamoe {

// `text` parsed; Error "<where>: invalid JSON: ..." or "<where>: expected a JSON object".
inline nlohmann::json parse_json_object(const std::string& text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail(where, ": invalid JSON: ", e.what());
  }
  if (!j.is_object()) fail(where, ": expected a JSON object");
  return j;
}

// The value of `key` in object `o`, or nullptr when it is absent or null (then, if
// `required`, Error "<where>: missing field <key>"). Type checks stay with the caller.
inline const nlohmann::json* json_field(const nlohmann::json& o, const char* key, const std::string& where,
                                        bool required = false) {
  auto it = o.find(key);
  if (it != o.end() && !it->is_null()) return &*it;
  if (required) fail(where, ": missing field ", key);
  return nullptr;
}

}  // namespace mlamoe
