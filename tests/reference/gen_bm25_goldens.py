#!/usr/bin/env python3
"""Golden BM25 scores and analyzer tokens for loom::index (lib/index/bm25.h), from bm25s.

    tests/reference/setup-venv-bm25 && tests/reference/.venv-bm25/bin/python tests/reference/gen_bm25_goldens.py [--lists DIR]

The reference is bm25s (method="lucene") with its tokenizer, bm25s.tokenize(lower=True, the
default pattern (?u)\\b\\w\\w+\\b, stop words, a PyStemmer stemmer), all pinned in
requirements-bm25.txt. Nothing here runs loom: every expected value comes from bm25s, PyStemmer or
the Python that runs them (str.lower and re are what bm25s.tokenize calls).

Writes:
  lib/index/stopwords_en.inc       bm25s's English stop words ("en"), as C string literals
  tests/reference/golden/bm25/
    corpus.jsonl.zst       12,000 documents {"id", "text"}: Debian package descriptions (below)
    queries.jsonl          300 queries {"qid", "kind", "text"}
    results-<setting>.jsonl.zst
                           per query {"qid", "tokens", "ids", "scores", "tie_ids"}: the query's
                           bm25s tokens, bm25s.retrieve's top 100 (k=100, sorted) with scores > 0,
                           their float32 scores (exact, as Python floats), and when 100 came back,
                           every document whose score equals the 100th (from get_scores), so a
                           reader can tell which documents may fill the last places
    analyzer.jsonl         tricky strings {"text", "default", "plain"}: bm25s.tokenize's terms
    analyzer-corpus.jsonl.zst  the same for the corpus's first 300 documents
    unicode.json           Python's facts per code point: the \\w set, str.lower() where it changes
                           a character, the final-sigma classes (case-ignorable; cased) and the
                           code points its Unicode version leaves unassigned
    meta.json              versions, settings and counts

Settings: "default" = k1 1.5, b 0.75, stop words "en", Snowball "english";
          "plain"   = k1 1.2, b 0.5, no stop words, no stemmer.

The corpus: `apt-cache dumpavail` lists the packages; their long descriptions come from apt's
Translation-en lists (Description-en with its continuation lines joined: the synopsis, then each
line without its leading space, " ." as an empty line), matched by Description-md5; a package
without one keeps its one-line Description. The package names are sorted and every k-th taken
(k = count // 12000), so the selection is deterministic for a given set of lists. Debian images
often ship without Translation-en (Acquire::Languages "none"): without --lists the script runs
`apt-get update` into a private temporary folder with Acquire::Languages=en (root and access to
the machine's Debian mirror needed), leaving the system's lists alone. Queries come from a fixed
seed.
"""
import argparse
import importlib.metadata
import json
import os
import random
import re
import sys
import tempfile
import unicodedata

import numpy as np
import zstandard

import bm25s
import bm25s.stopwords
import Stemmer

import debian_descriptions  # (this folder)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "golden", "bm25")
STOPWORDS_INC = os.path.join(REPO, "lib", "index", "stopwords_en.inc")
N_DOCS = 12000
N_QUERIES = 300
TOP_K = 100
SEED = 20251207
SETTINGS = {
    "default": dict(k1=1.5, b=0.75, stopwords="en", stemmer="english"),
    "plain": dict(k1=1.2, b=0.5, stopwords=None, stemmer=None),
}
TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")  # bm25s.tokenize's default token_pattern


# ---- corpus -----------------------------------------------------------------------------------

def build_corpus(lists, tmp):
    packages, translations = debian_descriptions.read(lists, tmp)
    tfiles = debian_descriptions.translation_files(lists)
    names = sorted(packages)
    step = len(names) // N_DOCS
    if step < 1:
        sys.exit(f"gen_bm25_goldens: only {len(names)} packages in apt's lists; {N_DOCS} needed")
    docs, long_count = [], 0
    for name in names[::step][:N_DOCS]:
        short, md5 = packages[name]
        long = translations.get((name, md5))
        long_count += long is not None
        docs.append({"id": name, "text": debian_descriptions.joined_description(long if long is not None else short)})
    info = {"packages": len(names), "step": step, "long_descriptions": long_count,
            "translation_files": [os.path.basename(p) for p in tfiles]}
    return docs, info


# ---- queries ----------------------------------------------------------------------------------

def words_of(text):
    return re.findall(r"\w[\w'+.-]*\w|\w", text)


def make_queries(docs, rng):
    texts = [d["text"] for d in docs]
    vocab = set()
    for t in texts:
        vocab.update(w.lower() for w in TOKEN_RE.findall(t.lower()))
    nonascii = sorted({w for t in texts for w in words_of(t) if any(ord(c) > 127 for c in w) and len(w) > 1})
    stemmer = Stemmer.Stemmer("english")
    families = {}
    for w in sorted(vocab):
        if w.isalpha() and w.isascii() and len(w) >= 4:
            families.setdefault(stemmer.stemWord(w), []).append(w)
    families = [sorted(f) for _, f in sorted(families.items()) if len(f) >= 3]
    stops = list(bm25s.stopwords.STOPWORDS_EN)

    def phrase(lo=2, hi=6):
        while True:
            ws = words_of(rng.choice(texts))
            if len(ws) >= lo:
                n = rng.randint(lo, min(hi, len(ws)))
                i = rng.randint(0, len(ws) - n)
                return ws[i:i + n]

    def word():
        while True:
            ws = [w for w in words_of(rng.choice(texts)) if len(w) > 2]
            if ws:
                return rng.choice(ws)

    def absent():
        while True:
            w = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(6, 10)))
            if w not in vocab:
                return w

    queries = []

    def add(kind, text):
        queries.append({"qid": len(queries), "kind": kind, "text": text})

    for _ in range(80):
        add("phrase", " ".join(phrase()))
    for _ in range(40):
        add("bag", " ".join(word() for _ in range(rng.randint(2, 5))))
    for _ in range(27):
        ws = phrase(2, 4)
        for _ in range(rng.randint(1, 3)):
            ws.insert(rng.randint(0, len(ws)), rng.choice(stops))
        add("stopwords", " ".join(ws))
    for _ in range(3):
        add("stopwords", " ".join(rng.choice(stops) for _ in range(rng.randint(2, 5))))
    for _ in range(30):
        ws = phrase(1, 3)
        rep = [w for w in ws for _ in range(rng.randint(1, 3))]
        rng.shuffle(rep)
        add("repeated", " ".join(rep + [rng.choice(ws)]))
    for _ in range(25):
        ws = phrase(1, 4)
        ws.insert(rng.randint(0, len(ws)), absent())
        add("absent", " ".join(ws))
    for _ in range(5):
        add("absent", " ".join(absent() for _ in range(rng.randint(1, 3))))
    for _ in range(22):
        ws = [rng.choice(nonascii)] + (phrase(1, 2) if rng.random() < 0.5 else [])
        rng.shuffle(ws)
        add("nonascii", " ".join(ws))
    for text in ["café naïve résumé", "Größe STRASSE straße", "ΣΟΦΙΑ σοφίας ΟΔΟΣ", "İstanbul DİYARBAKIR ılık",
                 "日本語 テキスト 検索", "Привет мир Москва", "cafe\u0301 e\u0301tude", "ﬁle ﬂow ligature"]:
        add("nonascii", text)
    for _ in range(30):
        f = rng.choice(families)
        add("stems", " ".join(rng.sample(f, min(len(f), rng.randint(2, 4)))))
    for _ in range(20):
        ws = phrase(1, 4)
        ws = [w.upper() if rng.random() < 0.5 else w.title() for w in ws]
        add("case", " ".join(ws))
    for text in ["", "   ", "-- ... !!", "a", "C++ compiler", "x86_64 amd64 i386", "e-mail client's",
                 "don't won't can't", "python3 python3.11 2.0", "__init__ lib_foo foo_bar"]:
        add("edge", text)
    assert len(queries) == N_QUERIES, len(queries)
    return queries


# ---- analyzer ---------------------------------------------------------------------------------

def tricky_strings(rng):
    s = [
        "", " ", "\n\t ", "a", "ab", "a b c", "Hello, World!", "hello world hello", "THE QUICK BROWN FOX",
        "The quick brown fox jumps over the lazy dog.", "it's don't won't o'clock rock'n'roll",
        "e-mail state-of-the-art well-known", "C++ C# F# .NET node.js", "x86_64 __init__ _ __ a_b _ab_ snake_case",
        "foo_bar-baz.qux", "2024 3.14 1,000,000 007 1st 2nd 3rd", "v1.2.3 ipv6 utf-8 sha256sum",
        "running runs ran runner", "connection connections connected connecting connective",
        "generously generous generosity", "caresses ponies ties caress cats", "university universe universal",
        "happiness happily happy", "relational conditional rational", "agreed agreement disagree",
        "fishing fished fisher fishes", "The the THE tHe", "a an and are as at be but by for if in into is it",
        "no not of on or such that the their then there these they this to was will with",
        "café naïve résumé façade jalapeño", "cafe\u0301 nai\u0308ve re\u0301sume\u0301",
        "Größe STRASSE Straße ß ẞ", "İstanbul DİYARBAKIR İi Iı ı", "i\u0307", "\u0130\u0130",
        "ΟΔΟΣ ΟΔΟΣ. ΣΟΦΙΑ Σ ΣΑ ΑΣ", "ΑΣ' ΑΣ\u0301 Α\u0301Σ ΑΣ1 Σ1 1Σ", "ὈΔΥΣΣΕΎΣ Ὀδυσσεύς", "σοφός ΣΟΦΌΣ",
        "ΑΣ\u00adΒ", "Α\u00adΣ", "ΑΣ.Β ΑΣ:Β ΑΣ'Β", "ABΣ\u0345 ΑΣ\u0345", "ΑΣΣ ΣΣ ΣΣΣ",
        "Привет мир МОСКВА Ёлка", "Ελληνικά ΕΛΛΗΝΙΚΆ", "Հայերեն ՀԱՅԵՐԵՆ", "ქართული ᲥᲐᲠᲗᲣᲚᲘ",
        "日本語のテキスト", "中文分词测试", "한국어 텍스트", "ภาษาไทย ทดสอบ", "हिन्दी भाषा", "العربية اَلْعَرَبِيَّةُ",
        "עברית שָׁלוֹם", "Tiếng Việt", "ǅemal ǄEMAL ǆ", "Ⓐⓑ ⒶⒷ Ⅻ ⅻ ⅫⅠ", "ＡＢＣ１２３ ｆｕｌｌ", "ﬁle ﬂow ﬀ ﬃ",
        "KELVIN \u212a Å \u212b", "½ ² ³ ¼ ⑴ ① ⓵", "١٢٣ ४५६ ๑๒๓", "😀 test👍 👍👍 👨\u200d👩\u200d👧", "a\u200bb a\u200cb a\u200db",
        "non\u00a0breaking", "soft\u00adhyphen", "tab\tsep\nnew\rline", "ǰ ẖ ΐ ﬓ", "ᏣᎳᎩ ꮳꮃꭹ", "𝐀𝐁𝐂 𝒂𝒃𝒄", "Ǳ ǲ ǳ",
        "ＡＢＣａｂｃ", "Ωmega ohm \u2126", "µ micro \u00b5 μ", "ǅ\u0308", "ﬅ st", "a'b a’b a‘b", "a.b a:b a·b",
        "über-cool naïveté", "Ärger Öl Übel", "ÆSIR æsir Œuvre", "Łódź Kraków", "čeština ČEŠTINA", "ŞİŞLİ şişli",
        "1e10 0x1F 0b101", "foo@example.com http://example.com/a_b?c=d", "#hashtag @mention $100 50%",
        "new\\nline", "quote\"inside\"", "<html><body>Hello</body></html>", "aaaa " * 20,
        "supercalifragilisticexpialidocious " * 3,
    ]
    specials = ["\u0301", "\u0308", "\u0345", "\u00ad", "\u200b", "\u200d", "'", "\u2019", ".", ":", "\u00b7",
                "_", "1", "\u0130", "\u03a3", "\u00df", "\u0149", "\u1e9e", "\u2160", "\u24b6", "\U0001f130",
                "\u00aa", "\u02b0", "\u0387", "-", "\u0600", "\u3007", "\u2188", "\U0001f600"]
    for c in specials:
        for ctx in ["x{}y", "{}", "ΑΣ{}", "Α{}Σ1", "{}{}", "ab{} {}cd", "Σ{}Σ"]:
            s.append(ctx.replace("{}", c))
    letters = "aAzZ_0é\u0301ΣσİıßØ日ä\u0308"
    for _ in range(60):
        s.append("".join(rng.choice(letters + " .-'") for _ in range(rng.randint(1, 12))))
    s.append(" ".join(bm25s.stopwords.STOPWORDS_EN) + " marker")
    return s


def analyze(texts):
    out = {}
    for name, st in SETTINGS.items():
        stemmer = Stemmer.Stemmer(st["stemmer"]) if st["stemmer"] else None
        out[name] = bm25s.tokenize(texts, lower=True, stopwords=st["stopwords"], stemmer=stemmer,
                                   return_ids=False, show_progress=False)
    return [{"text": t, "default": out["default"][i], "plain": out["plain"][i]} for i, t in enumerate(texts)]


def ranges(pred):
    out, start = [], None
    for cp in range(0x110000 + 1):
        on = cp <= 0x10FFFF and not (0xD800 <= cp <= 0xDFFF) and pred(chr(cp))
        if on and start is None:
            start = cp
        elif not on and start is not None:
            out.append([start, cp - 1])
            start = None
    return out


def unicode_facts():
    word = re.compile(r"\w")

    def final(s):
        return s.lower()[-1] == "\u03c2"

    # Python's final-sigma rule (unicodeobject.c, handle_capital_sigma) skips case-ignorable
    # characters and then asks whether a cased one follows or precedes. Probes: "cΣ" ends in final
    # sigma iff c is cased and not case-ignorable; "AcΣ" iff c is case-ignorable or cased.
    cased = lambda c: final(c + "\u03a3")
    ignorable = lambda c: not final(c + "\u03a3") and final("A" + c + "\u03a3")
    lower = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        if c.lower() != c:
            lower.append([cp, [ord(x) for x in c.lower()]])
    return {
        "python": sys.version.split()[0], "unicode": unicodedata.unidata_version,
        "word": ranges(lambda c: word.match(c) is not None),
        "lower": lower,
        "case_ignorable": ranges(ignorable),
        "cased": ranges(cased),
        "unassigned": ranges(lambda c: unicodedata.category(c) == "Cn"),
    }


# ---- scores -----------------------------------------------------------------------------------

def run_setting(name, docs, queries):
    st = SETTINGS[name]
    stemmer = Stemmer.Stemmer(st["stemmer"]) if st["stemmer"] else None
    corpus_tokens = bm25s.tokenize([d["text"] for d in docs], lower=True, stopwords=st["stopwords"],
                                   stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(k1=st["k1"], b=st["b"], method="lucene")
    retriever.index(corpus_tokens, show_progress=False)
    out, nonempty = [], 0
    for q in queries:
        tokens = bm25s.tokenize(q["text"], lower=True, stopwords=st["stopwords"], stemmer=stemmer,
                                return_ids=False, show_progress=False)[0]
        ids, scores, ties = [], [], []
        if tokens:
            res_docs, res_scores = retriever.retrieve([tokens], k=TOP_K, show_progress=False)
            full = retriever.get_scores(tokens)
            assert full.dtype == np.float32
            for d, s in zip(res_docs[0].tolist(), res_scores[0].tolist()):
                assert np.float32(s) == full[d]
                if s > 0:
                    ids.append(docs[d]["id"])
                    scores.append(float(s))
            assert len(ids) == min(TOP_K, int((full > 0).sum()))
            if len(ids) == TOP_K:
                last = np.float32(scores[-1])
                ties = [docs[d]["id"] for d in np.nonzero(full == last)[0].tolist()]
        nonempty += bool(ids)
        out.append({"qid": q["qid"], "tokens": tokens, "ids": ids, "scores": scores, "tie_ids": ties})
    return out, nonempty


def write_jsonl(path, rows, compress=False):
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    if compress:
        data = zstandard.ZstdCompressor(level=19).compress(data)
    with open(path, "wb") as f:
        f.write(data)


def write_stopwords():
    words = list(bm25s.stopwords.STOPWORDS_EN)
    lines = ["// bm25s's English stop words (bm25s.stopwords.STOPWORDS_EN, bm25s " + bm25s.__version__ + "),",
             "// the list that bm25s.tokenize(stopwords=\"en\") drops. Generated by",
             "// tests/reference/gen_bm25_goldens.py: do not edit.", ""]
    lines += ["\"" + w.replace("\\", "\\\\").replace("\"", "\\\"") + "\"," for w in words]
    with open(STOPWORDS_INC, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lists", help="apt lists folder with Translation-en files (default: fetch into a temp folder)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    write_stopwords()
    with tempfile.TemporaryDirectory() as tmp:
        lists = args.lists or debian_descriptions.fetch_lists(tmp)
        docs, corpus_info = build_corpus(lists, tmp)
    write_jsonl(os.path.join(OUT, "corpus.jsonl.zst"), docs, compress=True)
    rng = random.Random(SEED)
    queries = make_queries(docs, rng)
    write_jsonl(os.path.join(OUT, "queries.jsonl"), queries)
    counts = {}
    for name in SETTINGS:
        rows, nonempty = run_setting(name, docs, queries)
        write_jsonl(os.path.join(OUT, f"results-{name}.jsonl.zst"), rows, compress=True)
        counts[name] = {"queries_with_results": nonempty}
    write_jsonl(os.path.join(OUT, "analyzer.jsonl"), analyze(tricky_strings(rng)))
    write_jsonl(os.path.join(OUT, "analyzer-corpus.jsonl.zst"), analyze([d["text"] for d in docs[:300]]), compress=True)
    with open(os.path.join(OUT, "unicode.json"), "w") as f:
        json.dump(unicode_facts(), f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    meta = {
        "bm25s": bm25s.__version__, "PyStemmer": importlib.metadata.version("PyStemmer"), "numpy": np.__version__,
        "python": sys.version.split()[0], "unicode": unicodedata.unidata_version, "method": "lucene",
        "settings": SETTINGS, "top_k": TOP_K, "seed": SEED, "documents": len(docs), "queries": len(queries),
        "corpus": corpus_info, "results": counts,
    }
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta["results"]), file=sys.stderr)


if __name__ == "__main__":
    main()
