"""Prints the pre-tokenizer regexes of src/tokenizer/pretokenizer.cpp as JSON (without
the final single-digit step, which hf_tokenizers_reference.mjs adds itself)."""
import json
import os
import re

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "src", "tokenizer", "pretokenizer.cpp")
s = open(SRC, encoding="utf-8").read()


def patterns(name):
    i = s.index('{"%s",' % name)
    block = s[i:s.index("}},", i)]
    out, prev_end = [], None
    for m in re.finditer(r'R"\((.*?)\)"', block, re.S):
        if out and block[prev_end:m.start()].strip() == "":
            out[-1] += m.group(1)  # adjacent literals are one pattern
        else:
            out.append(m.group(1))
        prev_end = m.end()
    return out


d = {n: patterns(n) for n in ["deepseek-llm", "deepseek-coder", "deepseek-v3"]}
for n in ["deepseek-llm", "deepseek-coder"]:
    assert d[n][-1] == "\\p{N}"
    d[n] = d[n][:-1]
print(json.dumps(d, ensure_ascii=False, indent=1))
