// Errors the API answers with, in OpenAI's shape:
//   {"error": {"message": "...", "type": "...", "param": "..." | null, "code": "..." | null}}
// Thrown anywhere while handling a request; the HTTP layer turns it into the response.
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace mlamoe::server {

struct ApiError : std::runtime_error {
  int status;
  std::string type, param, code;  // empty param/code: null
  ApiError(int status, std::string message, std::string type, std::string param = "", std::string code = "")
      : std::runtime_error(std::move(message)),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}

  nlohmann::ordered_json to_json() const {
    nlohmann::ordered_json e = {{"message", what()}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
    if (!param.empty()) e["param"] = param;
    if (!code.empty()) e["code"] = code;
    return nlohmann::ordered_json{{"error", e}};
  }
};

inline ApiError invalid_request(std::string message, std::string param = "", std::string code = "invalid_value") {
  return ApiError(400, std::move(message), "invalid_request_error", std::move(param), std::move(code));
}

}  // namespace mlamoe::server
