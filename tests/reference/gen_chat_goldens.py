#!/usr/bin/env python3
"""Golden renders of real chat templates, made by Hugging Face transformers.

For each template in golden/chat/templates/*.jinja and each conversation below, writes one line
of golden/chat/<template>.jsonl:

    {"case": name, "messages": [...], "add_generation_prompt": bool, "vars": {...},
     "expected": "<rendered text>"}            or, when rendering must fail,
    {..., "error": "<the exception's message>"}

Rendering goes through transformers.utils.chat_template_utils.render_jinja_template, the function
PreTrainedTokenizerBase.apply_chat_template(tokenize=False) calls, with what apply_chat_template
adds around it (None-valued message keys dropped, the tokenizer's special tokens as variables, an
empty conversation refused). Where a real tokenizer.json of the family is in /work/shared/tokenizers
the script also checks that a PreTrainedTokenizerFast's own apply_chat_template gives the same
string for every case (the check is reported, and must pass).

    tests/reference/.venv/bin/python tests/reference/gen_chat_goldens.py

Template sources are listed in golden/chat/templates/SOURCES.md.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from transformers.utils.chat_template_utils import render_jinja_template

HERE = Path(__file__).resolve().parent
OUT = HERE / "golden" / "chat"
TEMPLATES = OUT / "templates"
SHARED = Path("/work/shared/tokenizers")

# Special tokens of each model (its tokenizer's special_tokens_map), and its tokenizer.json if here.
MODELS = {
    "smollm2": {"tokens": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>",
                           "pad_token": "<|im_end|>"}, "tokenizer": None},
    "qwen2.5": {"tokens": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, "tokenizer": "qwen3"},
    "qwen3": {"tokens": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, "tokenizer": "qwen3"},
    "llama3.2": {"tokens": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, "tokenizer": "llama3"},
    "llama3.3": {"tokens": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, "tokenizer": "llama3"},
    "gemma3": {"tokens": {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"},
               "tokenizer": "gemma3"},
    "mixtral": {"tokens": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, "tokenizer": "llama2"},
}

U = lambda c: {"role": "user", "content": c}  # noqa: E731
A = lambda c: {"role": "assistant", "content": c}  # noqa: E731
S = lambda c: {"role": "system", "content": c}  # noqa: E731

# (name, messages, add_generation_prompt, extra variables)
CASES = [
    ("user", [U("Hello!")], False, {}),
    ("user_gen", [U("Hello!")], True, {}),
    ("system_user", [S("You are a terse assistant."), U("What is 2+2?")], False, {}),
    ("system_user_gen", [S("You are a terse assistant."), U("What is 2+2?")], True, {}),
    ("multi_turn", [U("Hi"), A("Hello! How can I help?"), U("Tell me a joke."), A("Why did the chicken cross the road?"),
                    U("Why?")], True, {}),
    ("multi_turn_system", [S("Be nice."), U("Hi"), A("Hello."), U("Bye")], True, {}),
    ("ends_with_assistant", [U("Say hi"), A("Hi!")], False, {}),
    ("ends_with_assistant_gen", [U("Say hi"), A("Hi!")], True, {}),
    ("unicode", [U("Grüße aus Köln — 日本語のテキスト 🦙🎉 café naïve")], True, {}),
    ("emoji_only", [U("🦙"), A("🐑🐑"), U("🙂")], True, {}),
    ("whitespace_edges", [U("  padded both sides  "), A("\n\nleading newlines\n"), U("\ttab\t")], True, {}),
    ("inner_newlines", [S("line one\nline two\n\nline four"), U("a\nb\r\nc")], True, {}),
    ("empty_content", [U("")], True, {}),
    ("empty_system", [S(""), U("x")], True, {}),
    ("empty_assistant", [U("q"), A(""), U("again")], True, {}),
    ("special_chars", [U("{{ not a template }} {% nor this %} {# or this #} <|im_end|> \"quotes\" 'single' \\back")],
     True, {}),
    ("long_turns", [U("word " * 200), A("reply " * 150), U("ok")], True, {}),
    ("json_content", [U('{"a": [1, 2, {"b": null}], "c": "d"}')], True, {}),
    ("markdown", [U("# Title\n\n- item 1\n- item 2\n\n```python\nprint('x')\n```")], True, {}),
    ("none_key_dropped", [{"role": "user", "content": "hi", "name": None}], True, {}),
    ("extra_keys", [{"role": "user", "content": "hi", "name": "bob", "meta": {"k": 1}}], True, {}),
    ("think_in_history", [U("2+2?"), A("<think>\nadd them\n</think>\n\n4"), U("3+3?")], True, {}),
    ("think_last_assistant", [U("2+2?"), A("<think>\nadd them\n</think>\n\n4")], False, {}),
    ("reasoning_content", [U("2+2?"), {"role": "assistant", "content": "4", "reasoning_content": "simple sum"}],
     False, {}),
    ("enable_thinking_false", [U("Quick: capital of France?")], True, {"enable_thinking": False}),
    ("enable_thinking_true", [U("Quick: capital of France?")], True, {"enable_thinking": True}),
    ("date_string", [U("What day is it?")], True, {"date_string": "01 Jan 2025"}),
    ("system_only", [S("Only a system prompt.")], True, {}),
    ("two_users", [U("first"), U("second")], True, {}),
    ("assistant_first", [A("I start."), U("ok")], True, {}),
    ("system_middle", [U("a"), S("mid system"), A("b")], False, {}),
    ("tool_role", [U("weather?"), {"role": "tool", "content": "sunny"}], True, {}),
    ("missing_content", [{"role": "user"}], True, {}),
    ("int_content", [U(42)], True, {}),
    ("list_content", [{"role": "user", "content": [{"type": "text", "text": " hi there "}]}], True, {}),
    ("empty_conversation", [], True, {}),
]

# Llama 3.2 calls strftime_now(), i.e. today's date, unless date_string is given: pin it for every
# case so the goldens do not change from day to day (transformers passes extra kwargs as variables).
PINNED = {"llama3.2": {"date_string": "26 Jul 2024"}}


# Small templates that exercise the language itself (filters, methods, whitespace control,
# scoping, Python value formatting), rendered by the same jinja2 environment transformers builds.
SNIPPETS = [
    ("{{ 'a' ~ 1 ~ none ~ true ~ 1.5 }}", {}),
    ("{{ [1, 'two', none, true, 2.50, {'k': 'v'}] }}", {}),
    ("{{ {'a': 1, 'b': [1, 2]} | tojson }}|{{ x | tojson(indent=2) }}", {"x": {"k": [1, {"z": None}], "s": "é\n\""}}),
    ("{{ x | tojson(separators=(',', ':'), sort_keys=true) }}", {"x": {"b": 1, "a": [True, False, 1.0, 0.1]}}),
    ("{{ 1e20 }} {{ 1e-7 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}", {}),
    ("{{ '  hi  ' | trim }}|{{ 'xxhixx'.strip('x') }}|{{ '  a '.lstrip() }}|{{ ' a  '.rstrip() }}|", {}),
    ("{{ 'Hello World'.upper() }} {{ 'ÉCOLE'.lower() }} {{ 'hello world' | title }} {{ 'hELLO' | capitalize }}", {}),
    ("{{ ' a b  c '.split(none, 1) }} {{ 'x y'.split(maxsplit=0) }} {{ '  '.split() }} {{ 'a b'.split(' ') }}", {}),
    ("{{ 'a,b,,c'.split(',') }} {{ ' a  b \\t c '.split() }} {{ 'a-b-c'.split('-', 1) }}", {}),
    ("{{ 'héllo'[1] }} {{ 'héllo'[1:3] }} {{ 'héllo'[::-1] }} {{ 'héllo' | length }} {{ [1,2,3,4,5][1:-1] }} {{ [1,2,3][::-1] }}", {}),
    ("{{ x[-1] }} {{ x[10] }}|{{ x | first }} {{ x | last }} {{ x | join('+') }} {{ x | reverse | list }}", {"x": [1, 2, 3]}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}", {"d": {"z": 1, "a": 2}}),
    ("{% for x in xs %}{{ loop.index }}/{{ loop.length }}{{ '*' if loop.first }}{{ '!' if loop.last }}{{ loop.revindex0 }} {% else %}empty{% endfor %}", {"xs": ["a", "b", "c"]}),
    ("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {"xs": []}),
    ("{% for x in xs if x is odd %}{{ x }}{% if x > 4 %}{% break %}{% endif %}{% endfor %}", {"xs": list(range(10))}),
    ("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% endfor %}", {"xs": [1, 2, 3]}),
    ("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", {}),
    ("{% if a is defined %}A{% elif b is not none %}B{% else %}C{% endif %}", {"b": 1}),
    ("[{{ undefined_var }}]{{ undefined_var | default('dflt') }}{{ '' | default('e', true) }}{{ (undefined_var is defined) }}", {}),
    ("{{ none_var is none }} {{ 1 is number }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ true is boolean }} {{ 3 is divisibleby 3 }}", {"none_var": None}),
    ("{{ 'b' in 'abc' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ true == 1 }}", {}),
    ("{{ a and b }} {{ a or b }} {{ not a }} {{ '' or 'fallback' }} {{ 0 and 1 }}", {"a": "x", "b": ""}),
    ("{{ 'x' if c else 'y' }}{{ 'z' if not c }}", {"c": False}),
    ("{{ xs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}", {"xs": [{"role": "user", "content": "1"}, {"role": "bot", "content": "2"}, {"role": "user", "content": "3"}]}),
    ("{{ xs | reject('equalto', 'b') | list }} {{ xs | select('ne', 'a') | list }} {{ [3,1,2] | sort }} {{ ['b','A','a'] | unique | list }}", {"xs": ["a", "b", "c"]}),
    ("{{ d | dictsort }} {{ d | items | list }} {{ d.get('q', 'none') }} {{ d.keys() | list }} {{ d.values() | list }}", {"d": {"b": 1, "a": 2}}),
    ("{{ 'aXbXc'.replace('X', '-') }} {{ 'aXbXc' | replace('X', '') }} {{ 'abcabc'.find('c') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('bc') }}", {}),
    ("{{ 3 | string ~ 'x' }} {{ '42' | int + 1 }} {{ '4.5' | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ [1,2,3] | sum }} {{ [4,2,8] | max }}", {}),
    ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', punct='?') }}", {}),
    ("{% set block %}inner {{ 1 + 1 }}{% endset %}[{{ block }}]", {}),
    ("a  \n  {% if true %}\n    yes\n  {% endif %}\nb {{- ' c ' -}} d\n{# comment #}\ne {%- if true %} f {% endif -%}  \ng", {}),
    ("line1\n    {%+ if true %}kept indent{% endif %}\n{{ 'x' }}\n\n", {}),
    ("x\r\ny {% if true %}\r\nz{% endif %}\r\n", {}),
    ("  {# c #}\n  {%- if true -%}\n  t\n  {%- endif %}\n  {{ 'v' }}  \n", {}),
    ("{{ \"it's\" }} {{ 'say \\\"hi\\\"' }} {{ 'tab\\there' }} {{ '\\u00e9\\x41' }} {{ ['it\\'s', \"q\\\"\"] }}", {}),
    ("{{ 'ab' * 3 }} {{ [0] * 2 }} {{ 'x' + 'y' }} {{ [1] + [2] }} {{ 7 - 2 * 3 }} {{ (7 - 2) * 3 }} {{ -2 ** 2 }}", {}),
    ("{{ raise_exception('custom failure ' ~ 42) }}", {}),
    ("{{ undefined_var.attr }}", {}),
    ("{{ undefined_var + 'x' }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 + 'a' }}", {}),
    ("{{ 'a' < 1 }}", {}),
    ("{{ d.missing.deeper }}", {"d": {}}),
    ("{{ xs[5].content }}", {"xs": [1]}),
    ("{% for m in messages %}{{ m.role }}:{{ m['content'] | trim }}|{% endfor %}", {"messages": [{"role": "user", "content": " x "}]}),
    ("{{ messages | length }} {{ messages[0].content.split('</think>')[-1].lstrip('\\n') }}", {"messages": [{"content": "<think>a</think>\n\nb"}]}),
]


def render(template: str, tokens: dict, messages: list, add_generation_prompt: bool, extra: dict) -> str:
    """What apply_chat_template(messages, tokenize=False, ...) returns, without a tokenizer."""
    if len(messages) == 0:
        raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
    messages = [{k: v for k, v in m.items() if v is not None} for m in messages]
    rendered, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                        add_generation_prompt=add_generation_prompt, **{**tokens, **extra})
    return rendered[0]


def load_tokenizer(family: str | None, template: str, tokens: dict):
    if family is None:
        return None
    path = SHARED / f"{family}.tokenizer.json.zst"
    if not path.exists():
        return None
    from transformers import PreTrainedTokenizerFast
    raw = subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    tmp = OUT / f".{family}.tokenizer.json"
    tmp.write_bytes(raw)
    try:
        tok = PreTrainedTokenizerFast(tokenizer_file=str(tmp), **tokens)
    finally:
        tmp.unlink()
    tok.chat_template = template
    return tok


def main() -> int:
    total = checked = 0
    for name, model in MODELS.items():
        template = (TEMPLATES / f"{name}.jinja").read_text()
        tok = load_tokenizer(model["tokenizer"], template, model["tokens"])
        lines = []
        for case, messages, agp, extra in CASES:
            extra = {**extra, **PINNED.get(name, {})}
            rec = {"case": case, "messages": messages, "add_generation_prompt": agp,
                   "vars": {**model["tokens"], **extra}}
            try:
                rec["expected"] = render(template, model["tokens"], messages, agp, extra)
            except Exception as e:  # noqa: BLE001 - the message is the golden
                rec["error"] = str(e)
                rec["error_type"] = type(e).__name__
            if tok is not None:
                try:
                    via_tok = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=agp, **extra)
                    same = via_tok == rec.get("expected")
                except Exception as e:  # noqa: BLE001
                    same = str(e) == rec.get("error")
                if not same:
                    print(f"{name}/{case}: apply_chat_template differs from render_jinja_template", file=sys.stderr)
                    return 1
                checked += 1
            lines.append(json.dumps(rec, ensure_ascii=False))
            total += 1
        (OUT / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        n_err = sum('"error"' in ln for ln in lines)
        print(f"{name}: {len(lines)} cases ({n_err} errors){' [checked via apply_chat_template]' if tok else ''}")
    snippets = []
    from transformers.utils.chat_template_utils import _compile_jinja_template
    for template, variables in SNIPPETS:
        rec = {"template": template, "vars": variables}
        try:
            rec["expected"] = _compile_jinja_template(template).render(**variables)
        except Exception as e:  # noqa: BLE001
            rec["error"] = str(e)
            rec["error_type"] = type(e).__name__
        snippets.append(json.dumps(rec, ensure_ascii=False))
    (OUT / "snippets.jsonl").write_text("\n".join(snippets) + "\n")
    n_err = sum('"error"' in s for s in snippets)
    print(f"snippets: {len(snippets)} ({n_err} errors)")
    print(f"{total} renders, {checked} cross-checked against a real tokenizer's apply_chat_template")
    return 0


if __name__ == "__main__":
    sys.exit(main())
