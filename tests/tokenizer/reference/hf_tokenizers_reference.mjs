// Independent reference for large texts: tokenizes a file with tokenizers.js (the npm
// package @huggingface/tokenizers, a JS port of Hugging Face tokenizers) after building
// a tokenizer.json from a GGUF vocabulary. Not run by ctest (it needs the npm package);
// see docs/tokenizer.md for the procedure and the results.
//   npm install @huggingface/tokenizers   (in this folder)
//   python3 extract_pre.py > pre.json     (the regexes of src/tokenizer/pretokenizer.cpp)
//   node hf_tokenizers_reference.mjs VOCAB.gguf TEXT PRE > ids    (PRE: deepseek-llm ...)
// Digits(individual_digits) is written as a Split on \p{N}: Rust's is_numeric() is
// \p{N}, while tokenizers.js's Digits uses JavaScript's ASCII-only \d.
import fs from 'fs';
import { Tokenizer } from '@huggingface/tokenizers';

function readGguf(path) {
  const b = fs.readFileSync(path); let p = 4;
  const u32 = () => { const v = b.readUInt32LE(p); p += 4; return v; };
  const u64 = () => { const v = Number(b.readBigUInt64LE(p)); p += 8; return v; };
  const str = () => { const n = u64(); const s = b.toString('utf8', p, p + n); p += n; return s; };
  const sizes = {0:1,1:1,2:2,3:2,4:4,5:4,6:4,7:1,10:8,11:8,12:8};
  const val = (t) => {
    if (t === 8) return str();
    if (t === 9) { const et = u32(); const n = u64(); const a = []; for (let i = 0; i < n; i++) a.push(val(et)); return a; }
    const s = sizes[t]; let v;
    if (t === 4) v = b.readUInt32LE(p); else if (t === 5) v = b.readInt32LE(p); else if (t === 7) v = b[p] !== 0;
    else if (t === 6) v = b.readFloatLE(p); else v = 0;
    p += s; return v;
  };
  u32(); u64(); const nkv = u64(); const kv = {};
  for (let i = 0; i < nkv; i++) { const k = str(); const t = u32(); kv[k] = val(t); }
  return kv;
}

const [ggufPath, textPath, pre] = process.argv.slice(2);
const kv = readGguf(ggufPath);
const tokens = kv['tokenizer.ggml.tokens'], types = kv['tokenizer.ggml.token_type'], merges = kv['tokenizer.ggml.merges'];
const vocab = {}; tokens.forEach((t, i) => { if (types[i] === 1) vocab[t] = i; });
const added = [];
tokens.forEach((t, i) => { if (types[i] === 3 || types[i] === 4) added.push({id: i, content: t, single_word: false, lstrip: false, rstrip: false, normalized: types[i] === 4, special: types[i] === 3}); });
const split = (re) => ({type: 'Split', pattern: {Regex: re}, behavior: 'Isolated', invert: false});
const pres = JSON.parse(fs.readFileSync(new URL('./pre.json', import.meta.url)));
const json = {
  version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
  pre_tokenizer: {type: 'Sequence', pretokenizers: [...pres[pre].map(split), ...(pre === 'deepseek-v3' ? [] : [split('\\p{N}')]),
                  {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false}]},
  post_processor: null, decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
  model: {type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges},
};
const tok = new Tokenizer(json, {add_bos_token: false, add_eos_token: false});
const text = fs.readFileSync(textPath, 'utf8');
const ids = tok.encode(text, {add_special_tokens: false}).ids;
process.stdout.write(ids.join(',') + '\n');
