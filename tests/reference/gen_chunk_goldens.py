#!/usr/bin/env python3
"""Golden chunks for loom's Recursive chunker, from LangChain's RecursiveCharacterTextSplitter.

    tests/reference/setup-venv && tests/reference/.venv/bin/python tests/reference/gen_chunk_goldens.py

Writes tests/reference/golden/chunk/:
  cases.jsonl              one line per case: {"case", "size", "overlap", "separators"}
                           (separators null = loom's defaults; otherwise literal strings)
  <case>.input.txt         the text, UTF-8, byte for byte (CRLF kept)
  <case>.expected.jsonl    one line per chunk: {"start", "end", "text"}, byte offsets into the
                           input, text == input[start:end]

The splitter is configured as loom's Recursive strategy promises: keep_separator="end",
is_separator_regex=True, strip_whitespace=True, length_function=len, default separators
["\\n\\n", "\\n", r"[.!?]\\s+", " ", ""]; user separators are literal (re.escape'd here).

LangChain returns chunk texts only. Their offsets are recovered without re-implementing the
splitter: every chunk is a substring of the text, chunks come in order of start, and together
they cover every non-whitespace character (only whitespace lies between one chunk's end and the
next one's start). All placements satisfying that are counted; a case whose placement is not
unique fails loudly instead of guessing. Texts come from a fixed seed, so reruns are identical.
"""
import json
import os
import random
import re
import shutil
import sys

from langchain_text_splitters import RecursiveCharacterTextSplitter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "golden", "chunk")
DESIGN = "/work/shared/DESIGN.md"
DEFAULT_SEPARATORS = ["\n\n", "\n", r"[.!?]\s+", " ", ""]
SEED = 20240917


def token_length(model):
    """Length in tokens of `model` (a folder under $LOOM_MODELS), special tokens left out: what
    `loom chunk --by tokens --tokenizer MODEL` measures."""
    from tokenizers import Tokenizer
    root = os.environ.get("LOOM_MODELS") or os.path.expanduser("~/.cache/loom/models")
    tok = Tokenizer.from_file(os.path.join(root, model, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return lambda s: len(tok.encode(s, add_special_tokens=False).ids)


def split(text, size, overlap, separators, length=None):
    seps = DEFAULT_SEPARATORS if separators is None else [re.escape(s) for s in separators]
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=size, chunk_overlap=overlap, separators=seps, keep_separator="end",
        is_separator_regex=True, strip_whitespace=True,
        length_function=token_length(length) if length else len)
    return splitter.split_text(text)


def occurrences(text, sub):
    out, i = [], text.find(sub)
    while i >= 0:
        out.append(i)
        i = text.find(sub, i + 1)
    return out


def place(name, text, chunks):
    """Character start of every chunk; exits when there is no placement or more than one."""
    def blank(a, b):  # text[a:b] holds no non-whitespace character
        return a >= b or text[a:b].isspace()

    n = len(chunks)
    if n == 0:
        if text.strip():
            sys.exit(f"{name}: no chunks for a text that is not blank")
        return []
    cands = [occurrences(text, c) for c in chunks]
    # paths[i][p]: number of valid placements of chunks[i:] given chunk i starts at p (capped at 2)
    paths = [dict() for _ in range(n)]
    for i in range(n - 1, -1, -1):
        for p in cands[i]:
            end = p + len(chunks[i])
            if i == n - 1:
                cnt = 1 if blank(end, len(text)) else 0
            else:
                cnt = sum(c for q, c in paths[i + 1].items() if q >= p and (q <= end or blank(end, q)))
            if cnt:
                paths[i][p] = min(cnt, 2)
    firsts = {p: c for p, c in paths[0].items() if blank(0, p)}
    total = sum(firsts.values())
    if total == 0:
        sys.exit(f"{name}: LangChain's chunks cannot be placed in the text in order")
    if total > 1:
        first = next((i for i in range(n) if len(paths[i]) > 1), 0)
        sys.exit(f"{name}: chunk offsets are ambiguous (repeated text), first at chunk {first} "
                 f"{chunks[first]!r}; change the case's text")
    starts, prev = [], None
    for i in range(n):
        opts = firsts if i == 0 else {
            q: c for q, c in paths[i].items()
            if q >= prev and (q <= prev + len(chunks[i - 1]) or blank(prev + len(chunks[i - 1]), q))}
        (prev,) = opts.keys()
        starts.append(prev)
    return starts


# ---- texts -------------------------------------------------------------------------------------

def multilingual(rng):
    """Paragraphs of mixed scripts and whitespace oddities."""
    words = [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "café", "naïve", "résumé",
        "Ångström", "façade", "Straße", "smörgåsbord", "déjà", "vu", "e\u0301te\u0301",  # combining
        "n\u0303o", "a\u0308\u0304", "Ελληνικά", "λόγος", "Русский", "текст", "שלום", "עולם",
        "مرحبا", "بالعالم", "العربية", "हिन्दी", "नमस्ते", "ไทย", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷",
        "x²", "∑", "3.14", "e.g.", "Dr.", "U.S.A.", "i.e.,", "(see", "below)", "—", "«quoted»",
        "“curly”", "it’s", "a\u200bzero", "width",
    ]
    cjk = ["日本語の文章は空白なしで続きます。", "中文句子没有空格，一直写下去。", "漢字とかなが混ざる。",
           "한국어는 띄어쓰기를 합니다.", "東京都特許許可局長今日急遽休暇許可拒否。"]
    specials = ["e.g. 3.14 Dr. Who?!", "Wait... what?! Really?", "End.\tTab then text.",
                "NBSP\u00a0between\u00a0words", "ideographic\u3000space\u3000here",
                "abc.def.ghi", "Is it?No space.", "Ellipsis…", "Q: why? A: because!",
                "Odd\x0cwhite\x85space\u2028(Python\u2029isspace)\x1cset\u202fhere!\u2000Next.\x1fok"]
    # words longer than every size used (no repeated pattern inside, so offsets stay unique)
    longs = ["Donaudampfschifffahrtsgesellschaftskapitänswitwenrentenversicherungsanstalt",
             "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(230)),
             "".join(rng.choice("長日本語文字列漢字") for _ in range(120)),
             "".join(rng.choice("🙂😀🎉👍🏽🇫🇷é\u0301") for _ in range(80))]

    # every special, long word and CJK run appears at least once (drawn before random ones)
    required = specials + longs + cjk
    rng.shuffle(required)

    def sentence():
        n = rng.randint(3, 14)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.15 and required:
                parts.append(required.pop())
            elif r < 0.16:
                parts.append(rng.choice(longs))
            elif r < 0.22:
                parts.append(rng.choice(specials))
            elif r < 0.28:
                parts.append(rng.choice(cjk))
            else:
                parts.append(rng.choice(words))
        sep = lambda: rng.choice([" "] * 30 + ["  ", "\u00a0", "\u3000", "\t", "\u2003", "\x0b"])
        s = parts[0]
        for p in parts[1:]:
            s += sep() + p
        return s + rng.choice([".", ".", "!", "?", "?!", "…", "", "."])

    paras = []
    for i in range(6):
        lines = []
        for _ in range(rng.randint(2, 5)):
            line = " ".join(sentence() for _ in range(rng.randint(1, 4)))
            if rng.random() < 0.3:
                line += rng.choice([" ", "  ", "\t", " \u00a0"])  # trailing whitespace
            lines.append(line)
        eol = "\r\n" if i in (1, 4) else "\n"
        paras.append(eol.join(lines))
    while required:
        paras.append(" ".join(required.pop() for _ in range(min(3, len(required)))) + ".")
    out = ""
    gaps = ["\n\n", "\r\n\r\n", "\n\n\n\n", "\n \n", "\n\n\n\n\n\n", "\n  \n\n", "\n\t\n"]
    for i, p in enumerate(paras):
        if i:
            out += gaps[(i - 1) % len(gaps)]
        out += p
    out = "  " + out + "\n\n \n"
    for feature in ["\r\n", "\u00a0", "\u3000", "\u0301", " \n", "\n\n\n\n", "e.g. 3.14 Dr. Who?!",
                    "\x1c", "\u2028", longs[1]]:
        assert feature in out, f"multilingual text lacks {feature!r}"
    return out


def long_lines(rng):
    """Lines of 40..300 characters with no spaces (identifiers, base64, URLs, dotted names)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    lines = []
    for i in range(24):
        kind = i % 4
        n = rng.randint(40, 300)
        if kind == 0:
            line = "".join(rng.choice(alphabet) for _ in range(n))
        elif kind == 1:
            line = "https://example.org/" + "/".join(
                "".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 12))) for _ in range(n // 8))
        elif kind == 2:
            line = ".".join("".join(rng.choice("klmnopqrst") for _ in range(rng.randint(2, 9)))
                            for _ in range(n // 6)) + "."
        else:
            line = "".join(rng.choice("αβγδεζηθ日本語ÄÖÜ€") for _ in range(n))
        lines.append(line)
    return "\n".join(lines) + "\n"


def lines_and_words(rng):
    """Text for separators ["\\n", " "]: lines with words, some words longer than the size."""
    vocab = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
             "lambda", "mu", "supercalifragilisticexpialidocious-and-then-some-more",
             "ünïcödé", "日本語テキスト", "tab\tbed", "dots.in.word."]
    lines = []
    for _ in range(30):
        lines.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))))
    return "\n".join(lines)


def dashes(rng):
    """Text for separators ["--", ""]: fields joined by "--", some too long for one chunk."""
    parts = []
    for _ in range(40):
        n = rng.randint(0, 45)
        parts.append("".join(rng.choice("abcdef ghij\nklé日-") for _ in range(n)))
    return "--".join(parts)


def repeats(rng):
    """The same lines again and again: offsets must come from tracking, not from searching."""
    base = ["The same sentence again. ", "Another one here! ", "And a short line\n"]
    return "".join(base[i % 3] if rng.random() < 0.8 else base[(i + 1) % 3] for i in range(60))


# ---- main --------------------------------------------------------------------------------------

def main():
    rng = random.Random(SEED)
    with open(DESIGN, encoding="utf-8") as f:
        design = f.read()
    multi = multilingual(rng)
    longl = long_lines(rng)
    lw = lines_and_words(rng)
    dash = dashes(rng)
    rep = repeats(rng)
    cases = [
        ("design_1000_200", design, 1000, 200, None),
        ("design_300_50", design, 300, 50, None),
        ("design_100_0", design, 100, 0, None),
        ("multilingual_50_10", multi, 50, 10, None),
        ("multilingual_200_0", multi, 200, 0, None),
        ("multilingual_37_36", multi, 37, 36, None),
        ("long_lines_64_8", longl, 64, 8, None),
        ("custom_lines_words_40_10", lw, 40, 10, ["\n", " "]),
        ("custom_dashes_30_5", dash, 30, 5, ["--", ""]),
        ("repeats_45_20", rep, 45, 20, None),
        ("whitespace_only", " \n\n\t \u3000\u00a0\r\n  \n", 10, 2, None),
        ("empty", "", 100, 10, None),
        ("single_short", "Hello, world. Short text.", 100, 20, None),
        # sizes in MiniLM tokens (needs scripts/fetch-models)
        ("design_minilm_tokens_128_16", design, 128, 16, None, "minilm"),
        ("multilingual_minilm_tokens_48_8", multi, 48, 8, None, "minilm"),
    ]
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    with open(os.path.join(OUT, "cases.jsonl"), "w", encoding="utf-8") as cf:
        for name, text, size, overlap, seps, *length in cases:
            length = length[0] if length else None
            chunks = split(text, size, overlap, seps, length)
            starts = place(name, text, chunks)
            data = text.encode("utf-8")
            with open(os.path.join(OUT, name + ".input.txt"), "wb") as f:
                f.write(data)
            with open(os.path.join(OUT, name + ".expected.jsonl"), "w", encoding="utf-8") as f:
                for c, s in zip(chunks, starts):
                    b = len(text[:s].encode("utf-8"))
                    e = b + len(c.encode("utf-8"))
                    assert data[b:e].decode("utf-8") == c
                    f.write(json.dumps({"start": b, "end": e, "text": c}, ensure_ascii=False) + "\n")
            cf.write(json.dumps({"case": name, "size": size, "overlap": overlap, "separators": seps,
                                 "length": length}, ensure_ascii=False) + "\n")
            print(f"{name}: {len(text)} chars, {len(data)} bytes, {len(chunks)} chunks", file=sys.stderr)


if __name__ == "__main__":
    main()
