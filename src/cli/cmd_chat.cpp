// mlamoe chat: an interactive conversation in the terminal. The whole conversation is
// re-rendered with the model's chat template each turn; the latent KV cache keeps the
// prefix that did not change, so only the new turn is prefilled.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/command.h"
#include "cli/common_flags.h"
#include "cli/default_model.h"
#include "common/error.h"
#include "common/files.h"
#include "runtime/generate.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/line_editor.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace mlamoe::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted = true; }

// Ctrl-C stops the answer being generated, not the program.
struct InterruptGuard {
  struct sigaction old {};
  InterruptGuard() {
    g_interrupted = false;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
  }
  ~InterruptGuard() { sigaction(SIGINT, &old, nullptr); }
};

// Model text for a terminal: valid UTF-8, no control characters but newline and tab
// (a model must not be able to send escape sequences to the user's terminal).
std::string printable(std::string_view text) {
  std::string s = utf8::is_valid(text) ? std::string(text) : utf8::sanitize(text);
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s)
    if (c >= 0x20 || c == '\n' || c == '\t') out += static_cast<char>(c);
  return out;
}

void save_conversation(const std::string& path, const std::vector<ChatMessage>& messages) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& m : messages) j.push_back({{"role", m.role}, {"content", m.content}});
  // Model output is not always valid UTF-8 (random or tiny models): such bytes are
  // saved as U+FFFD, JSON being text.
  write_file_atomic(path, nlohmann::json{{"messages", j}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

std::vector<ChatMessage> load_conversation(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not a saved conversation (", e.what(), ")");
  }
  if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array())
    fail(path, ": not a saved conversation (no \"messages\" array)");
  std::vector<ChatMessage> out;
  for (const auto& m : j["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") || !m["content"].is_string())
      fail(path, ": every message needs string \"role\" and \"content\"");
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

class ChatSession {
 public:
  ChatSession(Engine& engine, const Tokenizer& tok, ChatTemplate tmpl, GenerateOptions gen, bool hide_thinking, bool color)
      : engine_(engine), tok_(tok), tmpl_(std::move(tmpl)), gen_(std::move(gen)), hide_thinking_(hide_thinking), color_(color) {
    for (int32_t id = 0; id < tok_.n_vocab(); ++id)
      if (tok_.is_end_of_generation(id)) gen_.stop_tokens.push_back(id);
    think_open_ = tok_.find_token("<think>");
    think_close_ = tok_.find_token("</think>");
  }

  std::vector<ChatMessage> messages;

  // A restored --session: the cache holds these tokens (the earlier conversation).
  void set_cached(std::vector<int32_t> tokens) { cached_ = std::move(tokens); }
  // Counters of the last answer (prompt tokens computed vs reused from the cache).
  const GenerateStats& last() const { return last_; }

  // One assistant turn for the conversation so far (on failure the user turn is dropped).
  void answer() {
    std::vector<int32_t> tokens = tok_.encode(tmpl_.apply(messages, true), {.add_special = false, .parse_special = true});
    // The KV cache holds cached_ tokens; keep the part the new prompt shares with it.
    size_t common = 0;
    while (common < cached_.size() && common < tokens.size() && cached_[common] == tokens[common]) ++common;
    if (engine_.kv().length(0) > static_cast<int64_t>(common)) engine_.kv().truncate(0, static_cast<int64_t>(common));

    thinking_ = tmpl_.opens_thinking();
    if (thinking_) begin_thinking();
    StreamDecoder stream(tok_);
    std::string content;
    InterruptGuard guard;
    last_ = {};
    try {
      last_ = generate(engine_, 0, tokens, gen_, [&](int32_t id) {
        if (g_interrupted) return false;
        content += tok_.token_bytes(id, true);
        if (id == think_open_ || id == think_close_) {
          show(stream.flush());
          id == think_open_ ? begin_thinking() : end_thinking();
          return true;
        }
        show(stream.push(id));
        return !g_interrupted;
      });
    } catch (const Error& e) {
      end_thinking();
      std::fprintf(stderr, "\nerror: %s\n", e.what());
      messages.pop_back();  // the turn did not happen
      cached_.assign(tokens.begin(), tokens.begin() + std::min<size_t>(tokens.size(), engine_.kv().length(0)));
      return;
    }
    show(stream.flush());
    end_thinking();
    if (g_interrupted) std::fputs(color_ ? "\x1b[2m [stopped]\x1b[0m" : " [stopped]", stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    messages.push_back({"assistant", content});
    cached_.assign(tokens.begin(), tokens.begin() + std::min<size_t>(tokens.size(), engine_.kv().length(0)));
  }

 private:
  void show(const std::string& text) {
    if (text.empty() || (thinking_ && hide_thinking_)) return;
    std::fputs(printable(text).c_str(), stdout);
    std::fflush(stdout);
  }
  void begin_thinking() {
    thinking_ = true;
    if (hide_thinking_) {
      std::fputs(color_ ? "\x1b[2m(thinking…)\x1b[0m" : "(thinking…)", stdout);
    } else {
      std::fputs(color_ ? "\x1b[2m<think>" : "<think>", stdout);
    }
    std::fflush(stdout);
  }
  void end_thinking() {
    if (!thinking_) return;
    thinking_ = false;
    if (hide_thinking_) {
      std::fputs(color_ ? "\r\x1b[K" : "\n", stdout);  // erase the placeholder
    } else {
      std::fputs(color_ ? "</think>\x1b[0m" : "</think>", stdout);
    }
    std::fflush(stdout);
  }

  Engine& engine_;
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  GenerateOptions gen_;
  bool hide_thinking_, color_, thinking_ = false;
  int32_t think_open_ = -1, think_close_ = -1;
  std::vector<int32_t> cached_;
  GenerateStats last_;
};

const char* kHelp =
    "commands: /reset (forget the conversation), /save FILE, /load FILE, /help, /quit\n"
    "Ctrl-C stops an answer; Ctrl-D or /quit leaves.\n";

int run_chat(int argc, char** argv) {
  CLI::App app{"Chat with a model in the terminal"};
  ModelFlags mf;
  mf.add_to(app, /*model_required=*/false);
  std::string system, template_spec;
  bool hide_thinking = false;
  GenerateOptions g;
  g.n_predict = -1;
  app.add_option("--sys,--system", system, "system prompt (-sys works too)");
  app.add_option("--chat-template", template_spec, "built-in template (deepseek2, deepseek3, r1) or a Jinja file");
  app.add_flag("--hide-thinking", hide_thinking, "do not show R1 reasoning (<think>...</think>)");
  app.add_option("-n,--n-predict", g.n_predict, "max tokens per answer (-1: until end of turn or context)");
  SamplingFlags sf;
  sf.add_to(app);
  KvFlags kf;
  kf.add_to(app);
  return parse_and_run(app, argc, argv, [&] {
    if (mf.model.empty()) mf.model = default_model_path();
    g.sampling = sf.resolve();
    auto model = mf.load();
    if (!model->gguf().has("tokenizer.ggml.model")) fail(mf.model, ": no tokenizer data; chat needs a model with a vocabulary");
    auto tok = Tokenizer::from_gguf(model->gguf());
    ChatTemplate tmpl = ChatTemplate::for_model(*tok, template_spec);
    auto kv = kf.make_cache(*model);
    Engine engine(*model, mf.engine_options(*model), kv);
    LineEditor editor;
    const bool color = isatty(STDOUT_FILENO);
    std::fprintf(stderr, "mlamoe chat: %s, template %s, context %lld tokens\n%s", mf.model.c_str(), tmpl.name().c_str(),
                 static_cast<long long>(engine.n_ctx()), kHelp);

    ChatSession session(engine, *tok, std::move(tmpl), g, hide_thinking, color);
    const auto reset = [&] {
      session.messages.clear();
      if (!system.empty()) session.messages.push_back({"system", system});
    };
    reset();
    // --session FILE: the KV entries and tokens live in FILE, the messages beside it in
    // FILE.chat.json. Either may be missing or stale: the cache is only ever reused
    // where its tokens equal the re-rendered conversation, so a mismatch costs a
    // recompute, never a wrong answer.
    const std::string messages_file = kf.session.empty() ? "" : kf.session + ".chat.json";
    if (!kf.session.empty()) {
      session.set_cached(kf.restore_session(*kv, *model, 0));
      if (std::filesystem::exists(messages_file)) {
        try {
          session.messages = load_conversation(messages_file);
          std::fprintf(stderr, "(session %s: %zu messages, %lld cached tokens)\n", kf.session.c_str(),
                       session.messages.size(), static_cast<long long>(kv->length(0)));
        } catch (const Error& e) {
          std::fprintf(stderr, "warning: not using %s: %s\n", messages_file.c_str(), e.what());
        }
      }
    }
    const auto save_session = [&] {
      if (kf.session.empty()) return;
      try {
        kf.save_session(*kv, *model, 0);
        save_conversation(messages_file, session.messages);
      } catch (const std::exception& e) {  // a full disk must not end the conversation
        std::fprintf(stderr, "error: saving session %s: %s\n", kf.session.c_str(), e.what());
      }
    };
    while (auto line = editor.read_line("> ")) {
      std::string text = *line;
      if (text.find_first_not_of(" \t") == std::string::npos) continue;
      if (text[0] == '/') {
        const size_t sp = text.find(' ');
        const std::string cmd = text.substr(0, sp);
        const std::string arg = sp == std::string::npos ? "" : text.substr(text.find_first_not_of(' ', sp));
        try {
          if (cmd == "/quit" || cmd == "/exit") break;
          if (cmd == "/help") {
            std::fputs(kHelp, stdout);
          } else if (cmd == "/reset") {
            reset();
            std::puts("(conversation reset)");
          } else if (cmd == "/save" && !arg.empty()) {
            save_conversation(arg, session.messages);
            std::printf("(saved %zu messages to %s)\n", session.messages.size(), arg.c_str());
          } else if (cmd == "/load" && !arg.empty()) {
            session.messages = load_conversation(arg);
            std::printf("(loaded %zu messages from %s)\n", session.messages.size(), arg.c_str());
          } else {
            std::printf("unknown command '%s'\n%s", text.c_str(), kHelp);
          }
        } catch (const std::exception& e) {  // a bad file must not end the conversation
          std::printf("error: %s\n", e.what());
        }
        std::fflush(stdout);
        continue;
      }
      session.messages.push_back({"user", text});
      session.answer();
      save_session();
      if (mf.verbose)
        std::fprintf(stderr, "prompt: %lld tokens computed, %lld reused from the cache\n%s\n",
                     static_cast<long long>(session.last().prompt_tokens), static_cast<long long>(session.last().reused_tokens),
                     describe_kv(kv->stats()).c_str());
    }
    return 0;
  });
}

}  // namespace
MLAMOE_COMMAND("chat", "interactive chat in the terminal with the model's chat template", run_chat);
}  // namespace mlamoe::cli
