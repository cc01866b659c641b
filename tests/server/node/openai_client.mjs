// Drives a running `mlamoe serve` with the official OpenAI Node SDK:
//   node openai_client.mjs BASE_URL MODEL API_KEY
// Checks chat, streaming chat (with usage), completions, an aborted stream, and the
// errors the SDK maps to its exception classes. Prints one line per check; exits 1 on
// the first failure.
import OpenAI from "openai";

const [baseURL, model, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

function check(cond, what, detail = "") {
  if (!cond) {
    console.error(`FAIL ${what} ${detail}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

const messages = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Say something." },
];

// Chat, non-streamed, greedy.
const chat = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
check(chat.object === "chat.completion", "chat object");
check(typeof chat.choices[0].message.content === "string", "chat content is a string");
check(chat.choices[0].message.role === "assistant", "chat role");
check(["stop", "length"].includes(chat.choices[0].finish_reason), "chat finish_reason", chat.choices[0].finish_reason);
check(chat.usage.completion_tokens >= 1 && chat.usage.completion_tokens <= 12, "chat usage.completion_tokens");
check(chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens, "chat usage sums");

// The same request streamed: the deltas add up to the same text; usage comes last.
const stream = await client.chat.completions.create({
  model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let text = "", finish = null, usage = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    text += c.delta.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(chunks >= 2, "stream has chunks", String(chunks));
check(text === chat.choices[0].message.content, "stream text equals non-stream text", JSON.stringify([text, chat.choices[0].message.content]));
check(finish === chat.choices[0].finish_reason, "stream finish_reason");
check(usage && usage.completion_tokens === chat.usage.completion_tokens, "stream usage");

// Logprobs.
const lp = await client.chat.completions.create({ model, messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3 });
const content = lp.choices[0].logprobs.content;
check(content.length === lp.usage.completion_tokens, "one logprob per token");
check(content.every((t) => t.top_logprobs.length === 3 && t.logprob <= 0 && Array.isArray(t.bytes)), "top_logprobs shape");

// Completions.
const cmpl = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 8, temperature: 0.7, seed: 42 });
check(cmpl.object === "text_completion", "completion object");
check(typeof cmpl.choices[0].text === "string", "completion text");
const again = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 8, temperature: 0.7, seed: 42 });
check(again.choices[0].text === cmpl.choices[0].text, "same seed, same completion");

// A stream the client abandons: the server must keep working.
// (ignore_eos: a llama.cpp extension the SDK passes through, so it runs long.)
const long = await client.chat.completions.create({ model, messages, max_tokens: 4000, stream: true, ignore_eos: true });
let seen = 0;
for await (const _ of long) {
  if (++seen === 3) break;  // closes the connection
}
check(seen === 3, "aborted stream");

// Models.
const models = await client.models.list();
check(models.data.some((m) => m.id === model), "models lists the model");

// Errors the SDK turns into its classes.
async function expectError(fn, cls, status, what) {
  try {
    await fn();
  } catch (e) {
    check(e instanceof cls && e.status === status, what, `${e.constructor.name} ${e.status} ${e.message}`);
    return e;
  }
  check(false, what, "no error");
}
const nf = await expectError(() => client.chat.completions.create({ model: "no-such-model", messages }), OpenAI.NotFoundError, 404, "unknown model is 404");
check(nf.code === "model_not_found", "404 error code");
await expectError(() => client.chat.completions.create({ model, messages, n: 2 }), OpenAI.BadRequestError, 400, "n=2 is 400");
await expectError(() => client.chat.completions.create({ model, messages, temperature: 5 }), OpenAI.BadRequestError, 400, "temperature 5 is 400");
await expectError(() => client.chat.completions.create({ model, messages, bogus_field: 1 }), OpenAI.BadRequestError, 400, "unknown field is 400");
if (apiKey !== "unused") {
  const wrong = new OpenAI({ baseURL, apiKey: "wrong-key", maxRetries: 0 });
  await expectError(() => wrong.chat.completions.create({ model, messages }), OpenAI.AuthenticationError, 401, "wrong API key is 401");
}

// After all that, the server still answers.
const after = await client.chat.completions.create({ model, messages, max_tokens: 2 });
check(after.choices.length === 1, "still serving");
console.log("ALL OK");
