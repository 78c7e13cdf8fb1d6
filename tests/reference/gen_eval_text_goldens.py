#!/usr/bin/env python3
"""Golden text-generation metrics for loom::eval (lib/eval/text.h), from the reference implementations.

    tests/reference/setup-venv-eval && tests/reference/.venv-eval/bin/python tests/reference/gen_eval_text_goldens.py

References (pinned in requirements-eval.txt): sacrebleu 2.6.0 (BLEU, chrF, chrF++), rouge-score
0.1.2 with nltk 3.10.4's PorterStemmer (ROUGE-1/2/L/Lsum), and the official SQuAD evaluation
scripts v1.1 and v2.0, whose few scoring functions are restated below (squad_v1_*, squad_v2_*)
because they are scripts, not packages. Nothing here runs loom.

Inputs: 1,200 prediction/references items built with a fixed seed from real English text, the
Debian package descriptions of tests/reference/golden/bm25/corpus.jsonl.zst and the licence texts
of /usr/share/common-licenses, mutated (dropped, swapped, duplicated and replaced words, case,
punctuation, numbers with , and ., hyphens, HTML entities, Unicode: CJK, accents, combining
marks, emoji, no-break and other Unicode spaces, U+2028, zero-width characters, Greek capital
sigma, dotted capital I, the Kelvin sign; empty predictions and references, 1-4 references per
item, multi-line texts), plus short SQuAD-style answers.

Writes tests/reference/golden/eval_text/:
  items.jsonl.zst    per item {"prediction", "references", "squad_v1", "squad_v2", "bleu" {variant:
                     sentence_bleu result}, "chrf" {variant: sentence score}, "chrf_stats",
                     "rouge" {"plain"|"stem": {type: [p, r, f]}}}
  corpus.json        the corpus values of every metric and variant, with sacrebleu's signatures
  tokens.jsonl.zst   per distinct text: the sacrebleu tokenizers' output (13a, intl, char, none),
                     rouge-score's tokens (with and without stemming), SQuAD's normalize_answer
  porter.json.zst    words -> nltk PorterStemmer().stem(word) (NLTK_EXTENSIONS)
  unicode.json       Python's facts per code point: str.isspace, re's \\w, str.lower() where it
                     changes a character, the final-sigma probes, the regex module's \\p{P},
                     \\p{S}, \\p{N}, and the code points each Unicode version leaves unassigned
  meta.json          versions, seed, counts
The .zst files are written with the zstd command-line tool.
"""
import collections
import glob
import importlib.metadata
import json
import os
import random
import re
import string
import subprocess
import sys
import unicodedata

import regex
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize as rouge_tokenize

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "eval_text")
SEED = 20260601
N_ITEMS = 1200


# ---- the official SQuAD scripts' scoring (evaluate-v1.1.py, evaluate-v2.0.py) ------------------

def squad_normalize_answer(s):
    """normalize_answer of both scripts: lower, drop punctuation, drop articles, fix whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_v1_f1(prediction, ground_truth):
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def squad_v1_em(prediction, ground_truth):
    return squad_normalize_answer(prediction) == squad_normalize_answer(ground_truth)


def squad_v1_item(prediction, ground_truths):
    """metric_max_over_ground_truths for both metrics."""
    em = max(squad_v1_em(prediction, gt) for gt in ground_truths)
    f1 = max(squad_v1_f1(prediction, gt) for gt in ground_truths)
    return em, f1


def squad_v2_tokens(s):
    if not s:
        return []
    return squad_normalize_answer(s).split()


def squad_v2_exact(a_gold, a_pred):
    return int(squad_normalize_answer(a_gold) == squad_normalize_answer(a_pred))


def squad_v2_f1(a_gold, a_pred):
    gold_toks = squad_v2_tokens(a_gold)
    pred_toks = squad_v2_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def squad_v2_item(prediction, answers):
    """get_raw_scores for one question: answers normalizing to nothing are dropped; none left
    means unanswerable, whose only correct answer is ''."""
    gold = [a for a in answers if squad_normalize_answer(a)]
    if not gold:
        gold = ['']
    return max(squad_v2_exact(a, prediction) for a in gold), max(squad_v2_f1(a, prediction) for a in gold)


def squad_v1_corpus(ems, f1s):
    """evaluate(): running sums, then 100 * sum / total."""
    exact_match = f1 = 0
    for e, f in zip(ems, f1s):
        exact_match += e
        f1 += f
    return 100.0 * exact_match / len(ems), 100.0 * f1 / len(f1s)


def squad_v2_corpus(ems, f1s):
    """make_eval_dict(): 100 * sum(values) / total."""
    return 100.0 * sum(ems) / len(ems), 100.0 * sum(f1s) / len(f1s)


# ---- source text --------------------------------------------------------------------------------

def zstd_read(path):
    return subprocess.run(["zstd", "-dc", path], check=True, stdout=subprocess.PIPE).stdout.decode("utf-8")


def zstd_write(path, data):
    subprocess.run(["zstd", "-q", "-19", "-f", "-o", path], input=data.encode("utf-8"), check=True)


def source_sentences():
    texts = []
    corpus = os.path.join(HERE, "golden", "bm25", "corpus.jsonl.zst")
    for line in zstd_read(corpus).splitlines():
        texts.append(json.loads(line)["text"])
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.islink(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            # licences are wrapped: paragraphs are separated by blank lines
            texts.extend(" ".join(p.split()) for p in f.read().split("\n\n"))
    sentences = []
    for t in texts:
        for line in t.split("\n"):
            for s in re.split(r"(?<=[.!?])\s+", line.strip()):
                n = len(s.split())
                if 3 <= n <= 60:
                    sentences.append(s)
    return sentences


UNICODE_SNIPPETS = [
    "café", "naïve", "Ångström", "Straße", "e\u0301", "a\u0301", "The\u0301", "l'été", "¿Qué tal?",
    "日本語のテキスト", "中文，标点。", "한국어 문장", "Привет, мир", "ΣΟΦΟΣ", "ΟΔΥΣΣΕΥΣ", "ὈΔΥΣΣΕΎΣ.",
    "İstanbul", "DİYARBAKIR", "\u212aelvin", "ﬁle", "ﬀ", "ǅemal", "１２３", "٣٫١٤", "½", "x²", "Ⅻ",
    "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "the\u200bend", "zero\u200cwidth", "\ufeffBOM", "word\u00a0word",
    "line\u2028break", "para\u2029sep", "ideo\u3000space", "en\u2002space", "x\u0085y", "a\u000bb",
    "a\u001cb", "a\u00adb", "“quoted”", "‘single’", "— dash –", "…", "«guillemets»", "A\u0300N",
    "αβγ ΑΒΓ", "ß", "Æsir", "Œuvre", "ﬆ", "ⓐ Ⓐ", "_under_score_", "don't", "o'clock", "it’s",
    "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "हिन्दी", "ไทย", "😀.", "日本。",
    "3.14€", "£5", "¥100", "§ 2", "©2024", "→", "≥ 5", "°C", "µs", "Ω", "ᏣᎳᎩ", "𝐀𝐁𝐂", "𝟏𝟐",
]

ENTITY_SNIPPETS = ["&amp;", "&quot;", "&lt;", "&gt;", "&amp;quot;", "&amp;lt;", "&#39;", "&nbsp;",
                   "<skipped>", "AT&T", "R&D", "a < b", "x > y", "\"quote\"", "<b>bold</b>", "&apos;"]

NUMBER_SNIPPETS = ["1,000", "1,000,000.50", "3.14", "0.5", ".5", "5.", "2.5%", "10-20", "1990-2000",
                   "$5", "v1.2.3", "e.g.", "U.S.A.", "i.e.,", "No.1", "3,14", "12:30", "-1", "+1",
                   "1e-5", "#42", "2-3.", "a.b.c", "A.D.", "20.", "x,y", "9,", ",9", "1.2,3.4"]

PUNCT_SNIPPETS = [".", ",", "!", "?", ";", ":", "(", ")", "[", "]", "{", "}", "\"", "'", "-", "--",
                  "...", "/", "\\", "|", "@", "#", "*", "~", "`", "^", "=", "+", "_", "%", "$"]


class Maker:
    def __init__(self, rng, sentences):
        self.rng = rng
        self.sentences = sentences
        self.vocab = sorted({w for s in sentences[:3000] for w in s.split()})

    def sentence(self):
        return self.rng.choice(self.sentences)

    def mutate_words(self, words, strength):
        rng = self.rng
        words = list(words)
        for _ in range(strength):
            op = rng.randrange(12)
            if not words:
                words.append(rng.choice(self.vocab))
                continue
            i = rng.randrange(len(words))
            if op == 0 and len(words) > 1:
                del words[i]
            elif op == 1 and len(words) > 1:
                j = min(i + 1, len(words) - 1)
                words[i], words[j] = words[j], words[i]
            elif op == 2:
                words.insert(i, words[i])
            elif op == 3:
                words[i] = rng.choice(self.vocab)
            elif op == 4:
                words[i] = words[i].upper()
            elif op == 5:
                words[i] = words[i].lower() if rng.random() < 0.5 else words[i].capitalize()
            elif op == 6:
                words.insert(i, rng.choice(PUNCT_SNIPPETS))
            elif op == 7:
                words[i] = words[i] + rng.choice(PUNCT_SNIPPETS)
            elif op == 8:
                words.insert(i, rng.choice(NUMBER_SNIPPETS))
            elif op == 9:
                words.insert(i, rng.choice(UNICODE_SNIPPETS))
            elif op == 10:
                words.insert(i, rng.choice(ENTITY_SNIPPETS))
            else:
                words[i] = words[i].strip(".,;:!?()\"'")
        return words

    def join(self, words):
        """Words back to text, mostly with spaces, sometimes with other separators."""
        rng = self.rng
        out = ""
        for k, w in enumerate(words):
            if k:
                r = rng.random()
                if r < 0.9:
                    out += " "
                elif r < 0.93:
                    out += "  "
                elif r < 0.95:
                    out += "\n"
                elif r < 0.96:
                    out += "-\n"
                elif r < 0.97:
                    out += "\t"
                elif r < 0.98:
                    out += rng.choice(["\u00a0", "\u2028", "\u3000", "\u2009", "\r\n"])
                else:
                    out += ""
            out += w
        return out

    def variant(self, text, strength):
        return self.join(self.mutate_words(text.split(), strength))

    def multiline(self, k):
        rng = self.rng
        sents = [self.sentence() for _ in range(k)]
        sep = rng.choice(["\n", "\n", "\n\n", "\r\n", " \n", "\n \n"])
        return sents, sep

    def item(self):
        rng = self.rng
        kind = rng.choices(
            ["mt", "mt_multi", "qa", "summary", "unicode", "exact", "short", "empty", "numbers", "long"],
            weights=[24, 14, 20, 12, 8, 4, 6, 4, 5, 3])[0]
        nrefs = rng.choices([1, 2, 3, 4], weights=[55, 20, 15, 10])[0]
        if kind in ("mt", "mt_multi", "numbers", "unicode"):
            base = self.sentence()
            if kind == "numbers":
                base = self.join(self.mutate_words(base.split(), 0) + [rng.choice(NUMBER_SNIPPETS) for _ in range(3)])
            if kind == "unicode":
                w = base.split()
                for _ in range(rng.randint(1, 4)):
                    w.insert(rng.randrange(len(w) + 1), rng.choice(UNICODE_SNIPPETS))
                base = " ".join(w)
            refs = [base] + [self.variant(base, rng.randint(1, 5)) for _ in range(nrefs - 1)]
            if kind == "mt_multi" and nrefs > 1 and rng.random() < 0.3:
                refs[-1] = self.sentence()  # an unrelated reference
            pred = self.variant(base, rng.randint(0, 8))
        elif kind == "qa":
            w = self.sentence().split()
            i = rng.randrange(len(w))
            span = w[i:i + rng.randint(1, 5)]
            gold = " ".join(span)
            if rng.random() < 0.3:
                gold = rng.choice(["the ", "The ", "a ", "an ", "A "]) + gold
            refs = [gold] + [self.join(self.mutate_words(span, rng.randint(0, 2))) for _ in range(nrefs - 1)]
            r = rng.random()
            if r < 0.25:
                pred = gold
            elif r < 0.35:
                pred = gold.upper() + rng.choice(["", ".", "!", " ."])
            elif r < 0.45:
                pred = rng.choice(["The ", "the ", "an ", "A "]) + gold
            elif r < 0.8:
                pred = self.join(self.mutate_words(span, rng.randint(1, 3)))
            elif r < 0.9:
                pred = " ".join(self.sentence().split()[:rng.randint(1, 4)])
            else:
                pred = rng.choice(["", " ", "the", "a", ".", "unknown", "An"])
            if rng.random() < 0.15:
                refs[rng.randrange(len(refs))] = rng.choice(["", " ", "the", "A", ".", "an."])
        elif kind in ("summary", "long"):
            k = rng.randint(2, 6) if kind == "summary" else rng.randint(6, 12)
            sents, sep = self.multiline(k)
            refs = [sep.join(sents)]
            for _ in range(nrefs - 1):
                refs.append(sep.join(self.variant(s, rng.randint(1, 4)) for s in rng.sample(sents, rng.randint(1, len(sents)))))
            chosen = [self.variant(s, rng.randint(0, 6)) for s in sents if rng.random() < 0.7]
            if rng.random() < 0.3:
                chosen.append(self.sentence())
            rng.shuffle(chosen)
            pred = rng.choice(["\n", "\n", " ", "\n\n"]).join(chosen)
            if rng.random() < 0.2:
                pred += "\n"
        elif kind == "exact":
            base = self.sentence()
            refs = [base] + [self.variant(base, 2) for _ in range(nrefs - 1)]
            pred = base if rng.random() < 0.7 else base.rstrip(".") + "  \n"
        elif kind == "short":
            base = self.sentence().split()
            n = rng.randint(1, 4)
            refs = [" ".join(base[:n])] + [" ".join(self.mutate_words(base[:n], 1)) for _ in range(nrefs - 1)]
            pred = " ".join(self.mutate_words(base[:rng.randint(1, 4)], rng.randint(0, 1)))
        else:  # empty
            base = self.sentence()
            choice = rng.randrange(4)
            if choice == 0:
                pred, refs = "", [base] + [self.variant(base, 2) for _ in range(nrefs - 1)]
            elif choice == 1:
                pred, refs = base, [""] * nrefs
            elif choice == 2:
                pred, refs = "", [""] * nrefs
            else:
                pred, refs = rng.choice([" ", "\n", "\u00a0", "...", "\u200b"]), [base, ""][:nrefs]
        return {"prediction": pred, "references": refs}


# ---- metrics ------------------------------------------------------------------------------------

BLEU_VARIANTS = {
    "13a": dict(tokenize="13a"),
    "13a_lc": dict(tokenize="13a", lowercase=True),
    "none": dict(tokenize="none"),
    "char": dict(tokenize="char"),
    "intl": dict(tokenize="intl"),
}

CHRF_VARIANTS = {
    "chrf": dict(),
    "chrf++": dict(word_order=2),
    "chrf_lc": dict(lowercase=True),
    "chrf_eps": dict(eps_smoothing=True),
    "chrf_ws": dict(whitespace=True),
}

ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


def bleu_dict(s):
    return {"score": s.score, "precisions": list(s.precisions), "bp": s.bp, "sys_len": s.sys_len,
            "ref_len": s.ref_len, "counts": list(s.counts), "totals": list(s.totals)}


def ref_streams(items):
    n = max(len(it["references"]) for it in items)
    return [[it["references"][k] if k < len(it["references"]) else None for it in items] for k in range(n)]


def score_items(items):
    scorers = {"plain": rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=False),
               "stem": rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True)}
    sent_bleu = {k: BLEU(effective_order=True, **v) for k, v in BLEU_VARIANTS.items()}
    sent_chrf = {k: CHRF(**v) for k, v in CHRF_VARIANTS.items()}
    for it in items:
        pred, refs = it["prediction"], it["references"]
        em, f1 = squad_v1_item(pred, refs)
        it["squad_v1"] = {"exact": int(em), "f1": f1}
        em, f1 = squad_v2_item(pred, refs)
        it["squad_v2"] = {"exact": em, "f1": f1}
        it["bleu"] = {k: bleu_dict(m.sentence_score(pred, refs)) for k, m in sent_bleu.items()}
        it["chrf"] = {k: m.sentence_score(pred, refs).score for k, m in sent_chrf.items()}
        it["chrf_stats"] = CHRF()._extract_corpus_statistics([pred], [[r] for r in refs])[0]
        it["rouge"] = {}
        for name, scorer in scorers.items():
            s = scorer.score_multi(refs, pred)
            it["rouge"][name] = {t: [s[t].precision, s[t].recall, s[t].fmeasure] for t in ROUGE_TYPES}


def corpus_values(items):
    hyps = [it["prediction"] for it in items]
    streams = ref_streams(items)
    out = {}
    n = len(items)
    v1 = squad_v1_corpus([it["squad_v1"]["exact"] for it in items], [it["squad_v1"]["f1"] for it in items])
    v2 = squad_v2_corpus([it["squad_v2"]["exact"] for it in items], [it["squad_v2"]["f1"] for it in items])
    out["squad_v1"] = {"exact": v1[0], "f1": v1[1], "total": n}
    out["squad_v2"] = {"exact": v2[0], "f1": v2[1], "total": n}
    out["bleu"] = {}
    for k, v in BLEU_VARIANTS.items():
        m = BLEU(**v)
        s = m.corpus_score(hyps, streams)
        d = bleu_dict(s)
        d["signature"] = str(m.get_signature())
        out["bleu"][k] = d
    # the compat functions, for the record: defaults must agree with BLEU()/CHRF()
    assert sacrebleu.corpus_bleu(hyps, streams).score == out["bleu"]["13a"]["score"]
    out["chrf"] = {}
    for k, v in CHRF_VARIANTS.items():
        m = CHRF(**v)
        s = m.corpus_score(hyps, streams)
        out["chrf"][k] = {"score": s.score, "signature": str(m.get_signature())}
    assert sacrebleu.corpus_chrf(hyps, streams).score == out["chrf"]["chrf"]["score"]
    out["rouge"] = {}
    for name in ("plain", "stem"):
        out["rouge"][name] = {}
        for t in ROUGE_TYPES:
            sums = [0.0, 0.0, 0.0]
            for it in items:
                for j in range(3):
                    sums[j] += it["rouge"][name][t][j]
            out["rouge"][name][t] = [x / n for x in sums]
    return out


def tokens_of(texts):
    toks = {k: BLEU(**v).tokenizer for k, v in BLEU_VARIANTS.items() if k != "13a_lc"}
    stemmer = porter.PorterStemmer()
    rows = []
    for t in texts:
        row = {"text": t}
        for k, tok in toks.items():
            # what BLEU._preprocess_segment gives the tokenizer
            row[k] = tok(t.rstrip())
        row["rouge"] = rouge_tokenize.tokenize(t, None)
        row["rouge_stem"] = rouge_tokenize.tokenize(t, stemmer)
        row["squad"] = squad_normalize_answer(t)
        row["lower"] = t.lower()
        rows.append(row)
    return rows


# ---- Porter stemmer vocabulary ------------------------------------------------------------------

def porter_words(sentences, rng):
    """A few thousand diverse words: the ones that exercise each rule of each step, a random sample
    of the text's words, the stemmer's irregular forms and synthetic a-z0-9 strings."""
    stemmer = porter.PorterStemmer()
    vocab = set()
    for s in sentences:
        vocab.update(rouge_tokenize.tokenize(s, None))
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if not os.path.islink(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                vocab.update(rouge_tokenize.tokenize(f.read(), None))
    vocab = sorted(vocab)
    # group by how the stem differs from the word (removed suffix -> added suffix)
    groups = collections.defaultdict(list)
    for w in vocab:
        st = stemmer.stem(w)
        k = 0
        while k < min(len(w), len(st)) and w[k] == st[k]:
            k += 1
        groups[(w[k:][-6:], st[k:])].append(w)
    words = set()
    for key in sorted(groups):
        ws = groups[key]
        words.update(rng.sample(ws, min(3, len(ws))))
    words.update(rng.sample(vocab, min(2500, len(vocab))))
    words.update(["sky", "skies", "dying", "lying", "tying", "news", "innings", "inning", "outings",
                  "outing", "cannings", "canning", "howe", "proceed", "exceed", "succeed", "ties",
                  "died", "tied", "cried", "spied", "happy", "enjoy", "syzygy", "yyyy", "ayyy", "byyy",
                  "yay", "y", "ys", "yes", "a", "is", "as", "sses", "ies", "ied", "eed", "ed", "ing",
                  "bled", "sing", "feed", "agreed", "hopping", "falling", "hissing", "fizzed", "failing",
                  "filing", "conflated", "troubled", "sized", "generalizations", "oscillators",
                  "controlling", "rolling", "electricity", "hopefulness", "analogously", "logically",
                  "radically", "fully", "beautifully", "archaeology", "apology", "ecology"])
    alphabet = "abcdeiouyslntrz0123456789"
    for _ in range(600):
        words.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14))))
    for _ in range(300):
        w = rng.choice(vocab)
        words.add(w + rng.choice(["ing", "ed", "ies", "ied", "ness", "fulli", "alli", "logi", "ation",
                                  "izer", "bli", "iviti", "ement", "ll", "y", "eed", "ational", "s"]))
    words = sorted(words)
    return words, [stemmer.stem(w) for w in words], len(vocab)


# ---- Unicode facts ------------------------------------------------------------------------------

def ranges(pred):
    out, start = [], None
    for c in range(0x110000 + 1):
        ok = c <= 0x10FFFF and not (0xD800 <= c <= 0xDFFF) and pred(c)
        if ok and start is None:
            start = c
        elif not ok and start is not None:
            out.append([start, c - 1])
            start = None
    return out


def unicode_facts():
    word_re = re.compile(r"\w")
    p_re, s_re, n_re, cn_re = (regex.compile(p) for p in (r"\p{P}", r"\p{S}", r"\p{N}", r"\p{Cn}"))
    lower = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        if ch.lower() != ch:
            lower.append([c, ch.lower()])
    return {
        "python_unicode": unicodedata.unidata_version,
        "space": ranges(lambda c: chr(c).isspace()),
        "word": ranges(lambda c: word_re.match(chr(c)) is not None),
        "lower": lower,
        # lower("AΣ" + c) ends its sigma finally: c is case-ignorable or not cased
        "sigma_after": ranges(lambda c: ("A\u03a3" + chr(c)).lower()[1] == "\u03c2"),
        # lower(c + "Σ") is final: c is cased and not case-ignorable
        "sigma_before": ranges(lambda c: (chr(c) + "\u03a3").lower()[-1] == "\u03c2"),
        "unassigned": ranges(lambda c: unicodedata.category(chr(c)) == "Cn"),
        "regex_P": ranges(lambda c: p_re.match(chr(c)) is not None),
        "regex_S": ranges(lambda c: s_re.match(chr(c)) is not None),
        "regex_N": ranges(lambda c: n_re.match(chr(c)) is not None),
        "regex_unassigned": ranges(lambda c: cn_re.match(chr(c)) is not None),
    }


# ---- main ---------------------------------------------------------------------------------------

def main():
    rng = random.Random(SEED)
    sentences = source_sentences()
    maker = Maker(rng, sentences)
    items = [maker.item() for _ in range(N_ITEMS)]
    # a few fixed cases first in line: hand-checkable
    fixed = [
        {"prediction": "The cat sat on the mat.", "references": ["The cat sat on the mat."]},
        {"prediction": "the the the the", "references": ["The cat is on the mat.", "There is a cat on the mat."]},
        {"prediction": "", "references": ["a"]},
        {"prediction": "an apple", "references": ["The", "An apple."]},
        {"prediction": "İstanbul \u212aelvin ΟΔΟΣ", "references": ["istanbul kelvin οδος"]},
        {"prediction": "1,000.5 dollars-10 (AT&amp;T) 3.-", "references": ["1,000.5 dollars - 10 ( AT&T ) 3. -"]},
        {"prediction": "first line\nsecond line\n\nthird", "references": ["second line\nfirst line", "third"]},
    ]
    items = fixed + items[:N_ITEMS - len(fixed)]
    score_items(items)
    corpus = corpus_values(items)

    os.makedirs(OUT, exist_ok=True)
    zstd_write(os.path.join(OUT, "items.jsonl.zst"),
               "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items))
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(corpus, f, ensure_ascii=False, indent=1)
        f.write("\n")
    texts = []
    seen = set()
    for it in items:
        for t in [it["prediction"]] + it["references"]:
            if t not in seen:
                seen.add(t)
                texts.append(t)
    texts += [s for s in UNICODE_SNIPPETS + ENTITY_SNIPPETS + NUMBER_SNIPPETS + PUNCT_SNIPPETS if s not in seen]
    zstd_write(os.path.join(OUT, "tokens.jsonl.zst"),
               "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tokens_of(texts)))
    words, stems, vocab_size = porter_words(sentences, rng)
    zstd_write(os.path.join(OUT, "porter.json.zst"), json.dumps({"words": words, "stems": stems}) + "\n")
    with open(os.path.join(OUT, "unicode.json"), "w", encoding="utf-8") as f:
        json.dump(unicode_facts(), f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    meta = {
        "sacrebleu": importlib.metadata.version("sacrebleu"),
        "rouge_score": importlib.metadata.version("rouge_score"),
        "nltk": importlib.metadata.version("nltk"),
        "regex": importlib.metadata.version("regex"),
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "squad": "official evaluate-v1.1.py and evaluate-v2.0.py (restated in this script)",
        "seed": SEED,
        "items": len(items),
        "texts": len(texts),
        "porter_words": len(words),
        "porter_vocabulary_sampled_from": vocab_size,
        "bleu_variants": BLEU_VARIANTS,
        "chrf_variants": CHRF_VARIANTS,
        "rouge": {"types": ROUGE_TYPES, "corpus": "arithmetic mean of per-item values, summed in item order"},
    }
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(items)} items, {len(texts)} texts, {len(words)} Porter words", file=sys.stderr)


if __name__ == "__main__":
    main()
