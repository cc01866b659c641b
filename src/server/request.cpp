#include "server/request.h"

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <nlohmann/json.hpp>

namespace mlamoe::server {

namespace {

using json = nlohmann::json;

// OpenAI names JSON types like this in its messages.
std::string kind_of(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a decimal";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    default: return "an unsupported value";
  }
}

[[noreturn]] void wrong_type(const std::string& name, const std::string& expected, const json& v) {
  throw invalid_request("Invalid type for '" + name + "': expected " + expected + ", but got " + kind_of(v) + " instead.",
                        name, "invalid_type");
}

[[noreturn]] void out_of_range(const std::string& name, const std::string& what) {
  throw invalid_request("Invalid value for '" + name + "': " + what, name, "invalid_value");
}

double number(const json& v, const std::string& name, double lo, double hi) {
  if (!v.is_number()) wrong_type(name, "a decimal", v);
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    std::ostringstream os;
    os << "expected a number between " << lo << " and " << hi << ".";
    out_of_range(name, os.str());
  }
  return d;
}

int64_t integer(const json& v, const std::string& name, int64_t lo, int64_t hi) {
  int64_t i = 0;
  if (v.is_number_integer() || v.is_number_unsigned()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      i = std::numeric_limits<int64_t>::max();
    else
      i = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>() &&
             std::fabs(v.get<double>()) < 9e15) {
    i = static_cast<int64_t>(v.get<double>());  // 16.0 is an integer too
  } else {
    wrong_type(name, "an integer", v);
  }
  if (i < lo || i > hi) out_of_range(name, "expected an integer between " + std::to_string(lo) + " and " + std::to_string(hi) + ".");
  return i;
}

bool boolean(const json& v, const std::string& name) {
  if (!v.is_boolean()) wrong_type(name, "a boolean", v);
  return v.get<bool>();
}

const std::string& string(const json& v, const std::string& name) {
  if (!v.is_string()) wrong_type(name, "a string", v);
  return v.get_ref<const std::string&>();
}

[[noreturn]] void unsupported(const std::string& name, const std::string& why) {
  throw invalid_request("'" + name + "' " + why, name, "unsupported_parameter");
}

// A field OpenAI knows that this server accepts only with its neutral value.
void neutral_number(const json& v, const std::string& name) {
  if (number(v, name, -2.0, 2.0) != 0.0) unsupported(name, "is not supported by this server (only 0).");
}

void parse_stop(const json& v, ApiRequest& r, const RequestLimits& lim) {
  if (v.is_string()) {
    if (!v.get_ref<const std::string&>().empty()) r.stop.push_back(v.get<std::string>());
    return;
  }
  if (!v.is_array()) wrong_type("stop", "a string or an array of strings", v);
  if (v.size() > lim.max_stop) out_of_range("stop", "at most " + std::to_string(lim.max_stop) + " stop sequences are allowed.");
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string& s = string(v[i], "stop[" + std::to_string(i) + "]");
    if (!s.empty()) r.stop.push_back(s);
  }
}

void parse_stream_options(const json& v, ApiRequest& r) {
  if (!v.is_object()) wrong_type("stream_options", "an object", v);
  for (auto& [k, val] : v.items()) {
    if (k == "include_usage") {
      if (!val.is_null()) r.include_usage = boolean(val, "stream_options.include_usage");
    } else if (k == "include_obfuscation") {
      if (!val.is_null()) boolean(val, "stream_options.include_obfuscation");  // nothing to obfuscate
    } else {
      throw invalid_request("Unrecognized stream_options argument supplied: " + k, "stream_options." + k, "unknown_parameter");
    }
  }
}

// Message content: a string, or an array of {"type": "text", "text": ...} parts.
std::string message_content(const json& v, const std::string& name) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) wrong_type(name, "a string or an array of content parts", v);
  std::string text;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string pname = name + "[" + std::to_string(i) + "]";
    const json& part = v[i];
    if (!part.is_object()) wrong_type(pname, "an object", part);
    auto type = part.find("type");
    if (type == part.end()) throw invalid_request("Missing required parameter: '" + pname + ".type'.", pname + ".type", "missing_required_parameter");
    if (string(*type, pname + ".type") != "text") unsupported(pname + ".type", "'" + type->get<std::string>() + "' content is not supported by this server (only text).");
    for (auto& [k, val] : part.items())
      if (k != "type" && k != "text") throw invalid_request("Unrecognized content part argument supplied: " + k, pname + "." + k, "unknown_parameter");
    auto t = part.find("text");
    if (t == part.end()) throw invalid_request("Missing required parameter: '" + pname + ".text'.", pname + ".text", "missing_required_parameter");
    text += string(*t, pname + ".text");
  }
  return text;
}

void parse_messages(const json& v, ApiRequest& r, const RequestLimits& lim) {
  if (!v.is_array()) wrong_type("messages", "an array", v);
  if (v.empty()) out_of_range("messages", "expected an array with minimum length 1, but got an empty array instead.");
  if (v.size() > lim.max_messages) out_of_range("messages", "at most " + std::to_string(lim.max_messages) + " messages are allowed.");
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string name = "messages[" + std::to_string(i) + "]";
    const json& m = v[i];
    if (!m.is_object()) wrong_type(name, "an object", m);
    auto role_it = m.find("role");
    if (role_it == m.end()) throw invalid_request("Missing required parameter: '" + name + ".role'.", name + ".role", "missing_required_parameter");
    std::string role = string(*role_it, name + ".role");
    if (role == "developer") role = "system";  // OpenAI's newer name for the system turn
    if (role != "system" && role != "user" && role != "assistant") {
      if (role == "tool" || role == "function") unsupported(name + ".role", "'" + role + "' messages are not supported by this server (no tool calling).");
      out_of_range(name + ".role", "expected one of 'system', 'developer', 'user', 'assistant', but got '" + role + "'.");
    }
    ChatMessage msg{role, ""};
    bool has_content = false;
    for (auto& [k, val] : m.items()) {
      if (k == "role") continue;
      if (k == "content") {
        if (val.is_null()) continue;
        msg.content = message_content(val, name + ".content");
        has_content = true;
      } else if (k == "name") {
        if (!val.is_null()) string(val, name + ".name");
      } else if (k == "reasoning_content" || k == "refusal") {
        // DeepSeek's API drops earlier reasoning from the prompt; so does the R1 template.
        if (!val.is_null()) string(val, name + "." + k);
      } else if (k == "tool_calls" || k == "function_call" || k == "tool_call_id" || k == "audio") {
        if (!val.is_null() && !(val.is_array() && val.empty())) unsupported(name + "." + k, "is not supported by this server (no tool calling).");
      } else {
        throw invalid_request("Unrecognized message argument supplied: " + k, name + "." + k, "unknown_parameter");
      }
    }
    if (!has_content && role != "assistant")
      throw invalid_request("Missing required parameter: '" + name + ".content'.", name + ".content", "missing_required_parameter");
    r.messages.push_back(std::move(msg));
  }
}

// Completions accept a string, [string], token ids, or [[token ids]] (one prompt: n=1).
void parse_prompt(const json& v, ApiRequest& r) {
  const json* p = &v;
  if (v.is_array() && v.size() == 1 && (v[0].is_string() || v[0].is_array())) p = &v[0];
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
    return;
  }
  if (!p->is_array()) wrong_type("prompt", "a string, an array of strings or an array of token ids", v);
  if (p->empty()) out_of_range("prompt", "the prompt is empty.");
  for (size_t i = 0; i < p->size(); ++i) {
    const json& t = (*p)[i];
    if (t.is_string()) unsupported("prompt", "with several prompts is not supported by this server (one prompt per request).");
    r.prompt_tokens.push_back(static_cast<int32_t>(integer(t, "prompt[" + std::to_string(i) + "]", 0, std::numeric_limits<int32_t>::max())));
  }
  r.prompt_is_tokens = true;
}

using FieldFn = std::function<void(const json&, ApiRequest&, const RequestLimits&)>;

// Fields both endpoints share.
std::map<std::string, FieldFn> common_fields() {
  return {
      {"model", [](const json& v, ApiRequest& r, auto&) { r.model = string(v, "model"); }},
      {"max_tokens", [](const json& v, ApiRequest& r, auto& lim) { r.max_tokens = integer(v, "max_tokens", 1, lim.max_tokens_cap); }},
      {"temperature", [](const json& v, ApiRequest& r, auto&) { r.temperature = static_cast<float>(number(v, "temperature", 0, 2)); }},
      {"top_p", [](const json& v, ApiRequest& r, auto&) { r.top_p = static_cast<float>(number(v, "top_p", 0, 1)); }},
      {"top_k", [](const json& v, ApiRequest& r, auto&) { r.top_k = static_cast<int>(integer(v, "top_k", 0, 1 << 30)); }},
      {"min_p", [](const json& v, ApiRequest& r, auto&) { r.min_p = static_cast<float>(number(v, "min_p", 0, 0.999)); }},
      {"repetition_penalty", [](const json& v, ApiRequest& r, auto&) { r.repetition_penalty = static_cast<float>(number(v, "repetition_penalty", 0.01, 10)); }},
      {"repeat_penalty", [](const json& v, ApiRequest& r, auto&) { r.repetition_penalty = static_cast<float>(number(v, "repeat_penalty", 0.01, 10)); }},
      {"ignore_eos", [](const json& v, ApiRequest& r, auto&) { r.ignore_eos = boolean(v, "ignore_eos"); }},
      {"seed", [](const json& v, ApiRequest& r, auto&) {
         r.seed = static_cast<uint64_t>(integer(v, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
       }},
      {"stop", parse_stop},
      {"stream", [](const json& v, ApiRequest& r, auto&) { r.stream = boolean(v, "stream"); }},
      {"stream_options", [](const json& v, ApiRequest& r, auto&) { parse_stream_options(v, r); }},
      {"n", [](const json& v, ApiRequest&, auto&) {
         if (integer(v, "n", 1, 128) != 1) unsupported("n", "must be 1 on this server (one choice per request).");
       }},
      {"frequency_penalty", [](const json& v, ApiRequest&, auto&) { neutral_number(v, "frequency_penalty"); }},
      {"presence_penalty", [](const json& v, ApiRequest&, auto&) { neutral_number(v, "presence_penalty"); }},
      {"logit_bias", [](const json& v, ApiRequest&, auto&) {
         if (!v.is_object()) wrong_type("logit_bias", "an object", v);
         if (!v.empty()) unsupported("logit_bias", "is not supported by this server.");
       }},
      {"user", [](const json& v, ApiRequest&, auto&) { string(v, "user"); }},
  };
}

std::map<std::string, FieldFn> chat_fields() {
  auto f = common_fields();
  f["messages"] = parse_messages;
  f["max_completion_tokens"] = [](const json& v, ApiRequest& r, auto& lim) { r.max_tokens = integer(v, "max_completion_tokens", 1, lim.max_tokens_cap); };
  f["logprobs"] = [](const json& v, ApiRequest& r, auto&) { r.logprobs = boolean(v, "logprobs"); };
  f["top_logprobs"] = [](const json& v, ApiRequest& r, auto& lim) { r.top_logprobs = static_cast<int>(integer(v, "top_logprobs", 0, lim.max_top_logprobs)); };
  f["response_format"] = [](const json& v, ApiRequest&, auto&) {
    if (!v.is_object()) wrong_type("response_format", "an object", v);
    auto t = v.find("type");
    if (t == v.end() || !t->is_string() || *t != "text") unsupported("response_format", "is not supported by this server (only {\"type\": \"text\"}).");
  };
  for (const char* name : {"tools", "functions"})
    f[name] = [name](const json& v, ApiRequest&, auto&) {
      if (!v.is_array()) wrong_type(name, "an array", v);
      if (!v.empty()) unsupported(name, "is not supported by this server (no tool calling).");
    };
  f["tool_choice"] = [](const json& v, ApiRequest&, auto&) {
    if (!(v.is_string() && v == "none")) unsupported("tool_choice", "is not supported by this server (only \"none\").");
  };
  f["parallel_tool_calls"] = [](const json& v, ApiRequest&, auto&) { boolean(v, "parallel_tool_calls"); };
  f["store"] = [](const json& v, ApiRequest&, auto&) { boolean(v, "store"); };  // nothing is stored
  f["metadata"] = [](const json& v, ApiRequest&, auto&) {
    if (!v.is_object()) wrong_type("metadata", "an object", v);
  };
  f["service_tier"] = [](const json& v, ApiRequest&, auto&) { string(v, "service_tier"); };
  return f;
}

std::map<std::string, FieldFn> completion_fields() {
  auto f = common_fields();
  f["prompt"] = [](const json& v, ApiRequest& r, auto&) { parse_prompt(v, r); };
  f["logprobs"] = [](const json& v, ApiRequest& r, auto&) {
    r.top_logprobs = static_cast<int>(integer(v, "logprobs", 0, 5));
    r.logprobs = true;
  };
  f["echo"] = [](const json& v, ApiRequest&, auto&) {
    if (boolean(v, "echo")) unsupported("echo", "is not supported by this server (only false).");
  };
  f["best_of"] = [](const json& v, ApiRequest&, auto&) {
    if (integer(v, "best_of", 1, 20) != 1) unsupported("best_of", "must be 1 on this server.");
  };
  f["suffix"] = [](const json& v, ApiRequest&, auto&) {
    if (!string(v, "suffix").empty()) unsupported("suffix", "is not supported by this server.");
  };
  return f;
}

}  // namespace

ApiRequest parse_request(Endpoint endpoint, const std::string& body, const RequestLimits& limits) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse errors, and numbers beyond double
    throw invalid_request(std::string("We could not parse the JSON body of your request. (") + e.what() + ")", "", "invalid_json");
  }
  if (!j.is_object()) throw invalid_request("The request body must be a JSON object, but got " + kind_of(j) + ".", "", "invalid_json");

  static const auto chat = chat_fields(), completion = completion_fields();
  const auto& fields = endpoint == Endpoint::Chat ? chat : completion;
  ApiRequest r;
  r.endpoint = endpoint;
  for (auto& [key, value] : j.items()) {
    auto it = fields.find(key);
    if (it == fields.end()) throw invalid_request("Unrecognized request argument supplied: " + key, key, "unknown_parameter");
    if (value.is_null()) continue;  // null means "the default", as in OpenAI's API
    it->second(value, r, limits);
  }

  const char* required = endpoint == Endpoint::Chat ? "messages" : "prompt";
  if (!j.contains("model") || j["model"].is_null())
    throw invalid_request("Missing required parameter: 'model'.", "model", "missing_required_parameter");
  if (!j.contains(required) || j[required].is_null())
    throw invalid_request(std::string("Missing required parameter: '") + required + "'.", required, "missing_required_parameter");
  if (endpoint == Endpoint::Chat && r.top_logprobs > 0 && !r.logprobs)
    throw invalid_request("Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.", "top_logprobs");
  if (j.contains("stream_options") && !j["stream_options"].is_null() && !r.stream)
    throw invalid_request("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options");
  return r;
}

}  // namespace mlamoe::server
