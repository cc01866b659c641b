// mlamoe run: prompt processing, then token-by-token decode with the latent KV cache;
// text streams to stdout, timings go to stderr.
#include <cstdio>
#include <filesystem>

#include "cli/command.h"
#include "cli/common_flags.h"
#include "cli/default_model.h"
#include "common/error.h"
#include "common/parse.h"
#include "runtime/generate.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace mlamoe::cli {
namespace {

int run_run(int argc, char** argv) {
  CLI::App app{"Generate text from a prompt"};
  ModelFlags mf;
  mf.add_to(app, /*model_required=*/false);
  KvFlags kf;
  kf.add_to(app);
  std::string prompt, tokens_arg;
  GenerateOptions g;
  bool show_ids = false, chat = false;
  std::string chat_template, system_prompt;
  app.add_option("-p,--prompt", prompt, "prompt text");
  app.add_option("--tokens", tokens_arg, "prompt as comma-separated token ids (instead of -p)");
  app.add_option("-n,--n-predict", g.n_predict, "tokens to generate (-1: until end of text or context)");
  app.add_option("-b,--batch-size", g.n_batch, "prompt tokens per forward pass");
  SamplingFlags sf;
  sf.add_to(app);
  app.add_flag("--show-ids", show_ids, "print token ids instead of text");
  app.add_flag("--chat", chat, "wrap the prompt as a user turn with the model's chat template");
  app.add_option("--chat-template", chat_template, "with --chat: a built-in template name or a Jinja file");
  app.add_option("--sys,--system-prompt", system_prompt, "with --chat: a system message");
  return parse_and_run(app, argc, argv, [&] {
    if (prompt.empty() == tokens_arg.empty()) fail("give a prompt with -p TEXT or --tokens 1,2,3 (exactly one)");
    if (mf.model.empty()) mf.model = default_model_path();
    g.sampling = sf.resolve();
    auto model = mf.load();
    std::unique_ptr<Tokenizer> tok;
    if (model->gguf().has("tokenizer.ggml.tokens")) tok = Tokenizer::from_gguf(model->gguf());
    std::vector<int32_t> tokens;
    if (!tokens_arg.empty()) {
      tokens = parse_token_list(tokens_arg);
    } else {
      if (!tok) fail(mf.model, ": the model has no tokenizer data; pass --tokens instead of -p");
      if (chat) {
        // The template writes BOS and the role markers itself.
        std::vector<ChatMessage> msgs;
        if (!system_prompt.empty()) msgs.push_back({"system", system_prompt});
        msgs.push_back({"user", prompt});
        TokenizerOptions no_bos;
        no_bos.add_special = false;
        tokens = tok->encode(ChatTemplate::for_model(*tok, chat_template).apply(msgs), no_bos);
      } else {
        tokens = tok->encode(prompt);
      }
    }
    if (tokens.empty()) fail("the prompt is empty");
    auto kv = kf.make_cache(*model);
    Engine engine(*model, mf.engine_options(*model), kv);
    // A saved conversation: generate() keeps the part the new prompt shares with it.
    const size_t restored = kf.restore_session(*kv, *model, 0).size();
    if (tok) {
      for (int32_t id = 0; id < tok->n_vocab(); ++id)
        if (tok->is_end_of_generation(id)) g.stop_tokens.push_back(id);
    } else if (model->config().eos_token_id >= 0) {
      g.stop_tokens.push_back(static_cast<int32_t>(model->config().eos_token_id));
    }
    std::unique_ptr<StreamDecoder> dec;
    if (tok && !show_ids) dec = std::make_unique<StreamDecoder>(*tok);
    auto st = generate(engine, 0, tokens, g, [&](int32_t t) {
      if (dec) std::fputs(dec->push(t).c_str(), stdout);
      else std::printf("%d ", t);
      std::fflush(stdout);
      return true;
    });
    if (dec) std::fputs(dec->flush().c_str(), stdout);
    std::printf("\n");
    kf.save_session(*kv, *model, 0);
    if (mf.verbose) {
      std::fprintf(stderr, "%s\n", describe_kv(kv->stats()).c_str());
      if (!kf.session.empty())
        std::fprintf(stderr, "session: %zu tokens restored, %lld reused, saved %zu tokens to %s\n", restored,
                     (long long)st.reused_tokens, kv->tokens(0).size(), kf.session.c_str());
    }
    std::fprintf(stderr, "prompt: %lld tokens in %.3f s (%.2f tok/s); decode: %lld tokens in %.3f s (%.2f tok/s)\n",
                 (long long)st.prompt_tokens, st.prompt_seconds, st.prompt_tps(), (long long)st.generated,
                 st.decode_seconds, st.decode_tps());
    return 0;
  });
}

}  // namespace
MLAMOE_COMMAND("run", "generate text from a prompt (-p) with the latent KV cache", run_run);
}  // namespace mlamoe::cli
