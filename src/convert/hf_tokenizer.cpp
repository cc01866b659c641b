#include "convert/hf_tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// llama.cpp's token types.
enum : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5 };

json parse_file(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
}

// "bos_token": "<s>" or {"content": "<s>", ...}
std::string token_content(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return {};
}

}  // namespace

bool write_hf_tokenizer(const std::string& dir, const ModelConfig& cfg, const std::string& model_type, GgufWriter& w) {
  const std::string tok_path = (fs::path(dir) / "tokenizer.json").string();
  if (!fs::exists(tok_path)) return false;
  const json tok = parse_file(tok_path);
  if (!tok.is_object() || !tok.contains("model") || !tok["model"].is_object())
    fail(tok_path, ": no \"model\" object");
  const json& model = tok["model"];
  if (model.value("type", std::string("BPE")) != "BPE")
    fail(tok_path, ": tokenizer model type '", model.value("type", std::string()), "' is not supported (BPE)");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(tok_path, ": model.vocab must be an object");

  const int64_t n_vocab = cfg.vocab_size;
  std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
  std::vector<int32_t> types(static_cast<size_t>(n_vocab), kUnused);
  std::vector<bool> named(static_cast<size_t>(n_vocab), false);
  auto put = [&](const std::string& text, const json& id_json, int32_t type) {
    if (!id_json.is_number_integer()) fail(tok_path, ": token '", text, "': id is not an integer");
    int64_t id = id_json.get<int64_t>();
    if (id < 0 || id >= n_vocab)
      fail(tok_path, ": token '", text, "' has id ", id, ", outside the model's vocab_size ", n_vocab);
    tokens[static_cast<size_t>(id)] = text;
    types[static_cast<size_t>(id)] = type;
    named[static_cast<size_t>(id)] = true;
  };
  for (auto& [text, id] : model["vocab"].items()) put(text, id, kNormal);
  if (auto added = tok.find("added_tokens"); added != tok.end() && added->is_array()) {
    for (auto& a : *added) {
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id"))
        fail(tok_path, ": added_tokens entry without content and id");
      put(a["content"].get<std::string>(), a["id"], a.value("special", false) ? kControl : kUserDefined);
    }
  }
  for (int64_t i = 0; i < n_vocab; ++i)
    if (!named[static_cast<size_t>(i)]) tokens[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";

  std::vector<std::string> merges;
  if (auto m = model.find("merges"); m != model.end() && m->is_array()) {
    merges.reserve(m->size());
    for (auto& e : *m) {
      if (e.is_string()) merges.push_back(e.get<std::string>());  // "a b"
      else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string())
        merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());  // ["a", "b"]
      else fail(tok_path, ": model.merges entry is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }

  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", model_type == "deepseek_v3" ? "deepseek-v3" : "deepseek-llm");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_array("tokenizer.ggml.token_type", GgufType::INT32, types.data(), types.size());
  w.set_string_array("tokenizer.ggml.merges", merges);

  // Special ids: tokenizer_config.json names the tokens; config.json has the ids.
  int64_t bos = cfg.bos_token_id, eos = cfg.eos_token_id, pad = -1;
  const std::string cfg_path = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(cfg_path)) {
    const json tc = parse_file(cfg_path);
    if (!tc.is_object()) fail(cfg_path, ": expected a JSON object");
    auto id_of = [&](const char* key, int64_t def) {
      std::string content = token_content(tc, key);
      if (content.empty()) return def;
      for (int64_t i = 0; i < n_vocab; ++i)
        if (named[static_cast<size_t>(i)] && tokens[static_cast<size_t>(i)] == content) return i;
      fail(cfg_path, ": ", key, " '", content, "' is not in ", tok_path);
    };
    bos = id_of("bos_token", bos);
    eos = id_of("eos_token", eos);
    pad = id_of("pad_token", pad);
    if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean())
      w.set_bool("tokenizer.ggml.add_bos_token", tc["add_bos_token"].get<bool>());
    if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean())
      w.set_bool("tokenizer.ggml.add_eos_token", tc["add_eos_token"].get<bool>());
    if (auto ct = tc.find("chat_template"); ct != tc.end() && ct->is_string())
      w.set_string("tokenizer.chat_template", ct->get<std::string>());
  }
  if (bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(bos));
  if (eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
  if (pad >= 0) w.set_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(pad));
  return true;
}

}  // namespace mlamoe
