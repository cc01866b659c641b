// mlamoe tokenize / detokenize: text <-> token ids with a model's (or a vocabulary-only
// GGUF's) tokenizer.
#include <cstdio>
#include <string>

#include "cli/command.h"
#include "common/error.h"
#include "common/files.h"
#include "common/parse.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace mlamoe::cli {
namespace {

// A token's bytes for display: printable UTF-8 as is, control characters and bytes
// that are not (yet) a whole character escaped.
std::string printable(std::string_view bytes) {
  std::string out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t start = pos;
    uint32_t cp;
    const bool ok = utf8::decode(bytes, pos, cp);
    if (!ok) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<uint8_t>(bytes[start]));
      out += buf;
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\\') {
      out += "\\\\";
    } else if (cp == '\'') {
      out += "\\'";
    } else if (cp < 0x20 || cp == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", cp);
      out += buf;
    } else {
      out.append(bytes.substr(start, pos - start));
    }
  }
  return out;
}

int run_tokenize(int argc, char** argv) {
  CLI::App app{"Print the token ids of a text"};
  std::string model, prompt, file;
  bool ids_only = false, show = false, no_bos = false, no_special = false;
  app.add_option("-m,--model", model, "GGUF model or vocabulary file")->required();
  app.add_option("-p,--prompt", prompt, "text to tokenize");
  app.add_option("-f,--file", file, "read the text from a file instead");
  app.add_flag("--ids-only", ids_only, "print only the ids, comma-separated (input for detokenize --tokens)");
  app.add_flag("--show", show, "print one line per token: id and its text");
  app.add_flag("--no-bos", no_bos, "do not add BOS/EOS even if the vocabulary asks for it");
  app.add_flag("--no-parse-special", no_special, "treat control-token text (<｜User｜> ...) as plain text");
  return parse_and_run(app, argc, argv, [&] {
    if (app.count("-p") + app.count("-f") != 1) fail("give the text with -p TEXT or -f FILE (exactly one)");
    const std::string text = app.count("-f") ? read_file(file) : prompt;
    auto tok = Tokenizer::from_file(model);
    const auto ids = tok->encode(text, {.add_special = !no_bos, .parse_special = !no_special});
    if (ids_only) {
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
      std::printf("%s\n", line.c_str());
      return 0;
    }
    if (show) {
      for (int32_t id : ids) std::printf("%8d  '%s'\n", id, printable(tok->token_bytes(id, true)).c_str());
    } else {
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
      std::printf("%s\n", line.c_str());
    }
    std::printf("%zu tokens\n", ids.size());
    return 0;
  });
}

int run_detokenize(int argc, char** argv) {
  CLI::App app{"Print the text of token ids"};
  std::string model, tokens;
  bool no_special = false;
  app.add_option("-m,--model", model, "GGUF model or vocabulary file")->required();
  app.add_option("--tokens", tokens, "comma-separated token ids")->required();
  app.add_flag("--no-special", no_special, "omit the text of control tokens (<｜begin▁of▁sentence｜> ...)");
  return parse_and_run(app, argc, argv, [&] {
    auto tok = Tokenizer::from_file(model);
    const auto ids = parse_token_list(tokens);
    // Raw bytes: the text may legitimately end inside a character the next token completes.
    const std::string text = tok->decode(ids, !no_special);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  });
}

}  // namespace
MLAMOE_COMMAND("tokenize", "print the token ids of a text (-p TEXT) with a model's tokenizer", run_tokenize);
MLAMOE_COMMAND("detokenize", "print the text of token ids (--tokens 1,2,3)", run_detokenize);
}  // namespace mlamoe::cli
