#!/usr/bin/env python3
"""Renders every template in templates/ with every conversation in conversations.json
using Debian's python3-jinja2, configured like Hugging Face transformers'
apply_chat_template (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, raise_exception), and writes expected/<template>.<conversation>.txt.
A render that fails is recorded as "ERROR: raise_exception: <message>" (the
template's own raise_exception) or "ERROR: <Python exception>: <message>". The C++ renderer must match
these files byte for byte (tests/tokenizer/chat_template_test.cpp).

Run from anywhere: python3 tests/tokenizer/data/chat/gen_chat_expected.py
"""
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"


class RaisedByTemplate(Exception):
    pass


def raise_exception(message):
    raise RaisedByTemplate(message)


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    with open(os.path.join(HERE, "conversations.json"), encoding="utf-8") as f:
        conversations = json.load(f)
    out_dir = os.path.join(HERE, "expected")
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(os.listdir(os.path.join(HERE, "templates"))):
        if not name.endswith(".jinja"):
            continue
        with open(os.path.join(HERE, "templates", name), encoding="utf-8") as f:
            template = env.from_string(f.read())
        for conv in conversations:
            try:
                text = template.render(messages=conv["messages"], add_generation_prompt=conv["add_generation_prompt"],
                                       bos_token=BOS, eos_token=EOS)
            except RaisedByTemplate as e:  # the template's own raise_exception(): the message must match
                text = "ERROR: raise_exception: " + str(e)
            except Exception as e:  # e.g. 'str' + None: only the failure must match
                text = "ERROR: %s: %s" % (type(e).__name__, e)
            path = os.path.join(out_dir, "%s.%s.txt" % (name[: -len(".jinja")], conv["name"]))
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
    print("jinja2", jinja2.__version__, "->", out_dir)


if __name__ == "__main__":
    main()
