#!/bin/bash
# TTFT of a ~1.9K-token shared-prefix request sent right after a server restart, with
# and without `serve --session` (docs/server.md, "Sessions"). One server process
# prepares the session (it answers the document once and saves it at SIGTERM); then,
# per repetition, a fresh server without --session and a fresh server restoring a copy
# of that session each answer a request that shares the document (max_tokens 1, so
# the client's time is the TTFT; the server's --verbose line gives its own).
#   bench/serve_session_ttft.sh BIN MODEL OUT_DIR [REPEAT]
# Run it alone: flock /tmp/bench.lock bench/serve_session_ttft.sh ...
set -u
B=$1 M=$2 D=$3 REPEAT=${4:-3}
V=${VOCAB:-/work/shared/tokenizer/ggml-vocab-deepseek-llm.gguf}
mkdir -p "$D"
DOC=$(python3 -c "
import random
random.seed(7)
w='latent cache keeps compressed keys values per token while routed experts share the load across devices and tokens'.split()
print(' '.join(random.choice(w) for _ in range(1900)))")
body() { python3 -c "import json,sys; print(json.dumps({'model':'m','prompt':sys.argv[1]+sys.argv[2],'max_tokens':1,'temperature':0}))" "$DOC" "$1"; }
start() {  # start LOG [FLAGS...]: a server on a free port; sets PORT
  local log=$1; shift
  setsid "$B" serve -m "$M" --vocab "$V" --port 0 -t 2 -c 4096 --alias m --verbose "$@" > "$log" 2>&1 < /dev/null &
  echo $! > "$D/pid"
  for _ in $(seq 1 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
  PORT=$(grep -o '127.0.0.1:[0-9]*' "$log" | cut -d: -f2)
}
stop() { kill -TERM "$(cat "$D/pid")"; while kill -0 "$(cat "$D/pid")" 2>/dev/null; do sleep 0.1; done; }
ask() {  # client seconds, prompt tokens, cached tokens, text
  body "$1" > "$D/body.json"
  curl -s -o "$D/out.json" -w '%{time_total}' "localhost:$PORT/v1/completions" -H 'Content-Type: application/json' --data-binary @"$D/body.json"
  echo -n " "; python3 -c "import json; j=json.load(open('$D/out.json')); print(j['usage']['prompt_tokens'], j['usage']['prompt_tokens_details']['cached_tokens'], repr(j['choices'][0]['text']))"
}
rm -f "$D/prepared.session"
start "$D/prepare.log" --session "$D/prepared.session"
echo "prepare: $(ask ' First question: what is cached?')"
stop; grep "session" "$D/prepare.log"
for rep in $(seq 1 "$REPEAT"); do
  start "$D/plain$rep.log"
  echo "without --session rep $rep: $(ask ' Second question: how long is it?')  $(grep -o 'ttft [0-9.]* s' "$D/plain$rep.log")"
  stop
  cp "$D/prepared.session" "$D/run.session"
  start "$D/session$rep.log" --session "$D/run.session"
  echo "with    --session rep $rep: $(ask ' Second question: how long is it?')  $(grep -o 'ttft [0-9.]* s' "$D/session$rep.log")  $(grep -o 'restored.*' "$D/session$rep.log")"
  stop; grep -o "saved.*" "$D/session$rep.log"
done
