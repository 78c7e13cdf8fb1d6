#!/usr/bin/env python3
"""Golden retrieval metrics for loom::eval (lib/eval/retrieval.h), from trec_eval 9.0.8.

    tests/reference/setup-venv-eval && tests/reference/.venv-eval/bin/python \\
        tests/reference/gen_eval_retrieval_goldens.py [--trec-eval-src DIR_OR_TARBALL]

The reference is the trec_eval binary, version 9.0.8: the C code pytrec-eval-terrier 0.5.11
(requirements-eval.txt) compiles in (its setup.py fetches
https://github.com/usnistgov/trec_eval/archive/v9.0.8.tar.gz). The script builds it twice with
trec_eval's own Makefile in a temporary folder: as released, for the 4-decimal tables, and with
"%6.4f" in its two printing files (meas_print_single.c, meas_print_final.c) replaced by "%.17g",
so every value comes out as the exact double it computed. Nothing else is changed. Then every
per-query value is checked against pytrec_eval (the same C code through Python; must be equal,
not close) and every "all" value against the mean of pytrec_eval's values over all qrels queries
(-c), except at relevance level 0, which pytrec_eval does not take. Nothing here runs loom.

--trec-eval-src takes an unpacked trec_eval-9.0.8 folder (a checkout of usnistgov/trec_eval at tag
v9.0.8) or the release tarball; without it the tarball is downloaded from the address above.

Collections (from fixed seeds) and what they exercise:
  graded     40 qrels queries, relevance -1..3: negative judgments, unjudged documents, heavy
             score ties (broken by document id), all-equal scores, exotic score text (1e2, +0.25,
             hexadecimal, inf), qrels queries missing from the run, run queries missing from the
             qrels, queries with no relevant document, a qrels query with only a negative
             judgment, a query with a single hit, cutoffs beyond the hits, ids whose byte order
             differs from their numeric order and non-ASCII ids, lines of queries interleaved.
             Variants: relevance level 1, 0 and 2; exponential gain (trec_eval on the qrels with
             rel -> 2^rel - 1 for rel > 0, which is the same nDCG: trec_eval's gain is the
             relevance value and nothing else depends on it at level 1).
             The run also as loom-retrieve JSONL, and the qrels as JSONL (both record forms):
             same expected values.
  ranks      a JSONL run whose hits have ranks but no scores, with its TREC twin (score -rank)
  binary     MS MARCO-like: 100 queries, 1-2 relevant documents each, 50 hits; mrr@10
  realistic  200 queries x 100 hits, graded 0..3 (zstd-compressed)
  empty      the graded qrels with an empty run: trec_eval refuses an empty file, so the values
             are written by this script: -c makes every measure 0, num_q the qrels queries and
             num_rel their judgments with rel > 0.

recip_rank_cut_K (loom's mrr@K) comes from `trec_eval -M K -m recip_rank`.

Writes tests/reference/golden/eval_retrieval/:
  cases.tsv                 one line per case: name, qrels, run, relevance level, gain, measures
                            (loom specs, space-separated), expected file, table file
  <collection>.qrels[.zst], .run[.zst], .run.jsonl[.zst], .qrels.jsonl.zst    the inputs
  <case>.expected[.zst]     `trec_eval -c -q` at full precision: "name<TAB>qid|all<TAB>value"
  <case>.table[.zst]        `trec_eval -c -q` as released (4 decimals), for the same measures
                            minus recip_rank_cut
Files over 16 KiB are zstd-compressed (inputs after trec_eval has read them; loom reads them through zstd).
"""
import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request

import pytrec_eval

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "eval_retrieval")
TARBALL_URL = "https://github.com/usnistgov/trec_eval/archive/v9.0.8.tar.gz"
# sha256 over its .c and .h files (name, NUL, bytes; by name): tag v9.0.8, commit d95ca64e14a4
SOURCE_SHA256 = "6f4f330b22118ac5436eb78703f783a93177f03849511df410d0aa1b0c7d7839"

CUTS = "1,2,3,5,10,20,100,1000"
RICH = ["num_q", "num_ret", "num_rel", "num_rel_ret", "map", "Rprec", "recip_rank", "P." + CUTS,
        "recall." + CUTS, "success.1,2,5,10,100", "ndcg", "ndcg_cut." + CUTS, "map_cut." + CUTS]
RR_CUTS = [1, 3, 10]


# ---- trec_eval ----------------------------------------------------------------------------------

def build_trec_eval(src, tmp):
    """Builds trec_eval (released and full-precision) from src; returns the two binaries."""
    if os.path.isfile(src):
        with tarfile.open(src) as t:
            t.extractall(os.path.join(tmp, "unpacked"))
        src = next(os.path.join(tmp, "unpacked", d) for d in os.listdir(os.path.join(tmp, "unpacked")))
    # The release is recognised by its code (its CHANGELOG and Makefile still say 9.0.4 and 9.0.7).
    h = hashlib.sha256()
    for f in sorted(os.listdir(src)):
        if f.endswith((".c", ".h")):
            h.update(f.encode() + b"\0" + open(os.path.join(src, f), "rb").read())
    if h.hexdigest() != SOURCE_SHA256:
        sys.exit(f"{src}: not trec_eval 9.0.8 (sha256 of its .c and .h files differs)")
    bins = []
    for variant in ("release", "precise"):
        d = os.path.join(tmp, variant)
        shutil.copytree(src, d)
        if variant == "precise":
            for f in ("meas_print_single.c", "meas_print_final.c"):
                p = os.path.join(d, f)
                text = open(p).read()
                assert "%6.4f" in text
                open(p, "w").write(text.replace("%6.4f", "%.17g"))
        subprocess.run(["make", "-s"], cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bins.append(os.path.join(d, "trec_eval"))
    return bins


def trec_eval(binary, qrels, run, measures, level=1, max_docs=None):
    cmd = [binary, "-c", "-q", "-l", str(level)]
    if max_docs:
        cmd += ["-M", str(max_docs)]
    for m in measures:
        cmd += ["-m", m]
    return subprocess.run(cmd + [qrels, run], check=True, capture_output=True, text=True).stdout


def parse_table(text):
    """trec_eval output -> list of (name, qid, value text)."""
    rows = []
    for line in text.splitlines():
        name, qid, value = line.split("\t")
        rows.append((name.strip(), qid, value))
    return rows


# ---- collections --------------------------------------------------------------------------------

def write_qrels(path, qrels):
    with open(path, "w") as f:
        for qid, docs in qrels:
            for doc, rel in docs:
                f.write(f"{qid} 0 {doc} {rel}\n")


def write_run(path, lines):
    with open(path, "w") as f:
        for qid, doc, rank, score in lines:
            f.write(f"{qid} Q0 {doc} {rank} {score} loom-test\n")


def graded(rng):
    """The rich collection: (qrels, run lines)."""
    qids = [f"q{i}" for i in range(1, 41)]  # q1, q10, q11, ... q2: byte order differs from numbers
    qrels, run = [], []
    doc_pool = [f"d{n}" for n in range(1, 400)] + ["D7", "a", "dé1", "dé2", "z", "d-x"]
    for i, qid in enumerate(qids):
        docs = rng.sample(doc_pool, rng.randint(4, 40))
        judged = []
        for d in docs:
            r = rng.choices([-1, 0, 1, 2, 3], weights=[1, 10, 5, 3, 2])[0]
            judged.append((d, r))
        if i in (4, 5):  # no relevant document
            judged = [(d, min(r, 0)) for d, r in judged]
            judged[0] = (judged[0][0], 0)
        if i == 6:  # nothing but one negative judgment; not in the run (trec_eval misreads it there)
            judged = [(docs[0], -1)]
        if i == 7:  # one relevant document at level 3 only
            judged = [(d, 3 if k == 0 else 0) for k, (d, r) in enumerate(judged)]
        qrels.append((qid, judged))
        if i in (1, 6, 33):  # judged, not retrieved
            continue
        if i == 9:
            n = 1
        elif i == 10:
            n = 0  # a query whose hits are all unjudged, below
        else:
            n = rng.randint(2, 60)
        judged_docs = [d for d, _ in judged]
        cands = judged_docs + rng.sample([d for d in doc_pool if d not in judged_docs], 30)
        hits = rng.sample(cands, min(n, len(cands)))
        if i == 10:
            hits = rng.sample([d for d in doc_pool if d not in judged_docs], 5)
        for k, d in enumerate(hits):
            if i == 11:
                score = "1.5"  # all equal: document order decides
            elif i == 12:
                score = rng.choice(["1e2", "+0.25", "-3.5E-1", "0x1p-2", "inf", "-inf", "7", "0.25"])
            else:
                score = f"{rng.choice([rng.randint(0, 8) / 2, round(rng.uniform(-5, 20), 3)]):g}"
            run.append((qid, d, rng.randint(0, 999), score))
    for qid in ("x1", "x2"):  # retrieved, not judged
        for k in range(5):
            run.append((qid, f"d{k}", k + 1, f"{5 - k}"))
    rng.shuffle(run)  # queries' lines interleaved
    return qrels, run


def binary(rng):
    qrels, run = [], []
    for i in range(100):
        qid = str(1000 + i * 7)
        rel = rng.sample(range(5000), rng.choice([1, 1, 2]))
        qrels.append((qid, [(f"p{d}", 1) for d in rel]))
        cands = [f"p{d}" for d in rng.sample(range(5000), 60)]
        if rng.random() < 0.7:
            cands[rng.randrange(40)] = f"p{rel[0]}"
        cands = list(dict.fromkeys(cands))[:50]
        scores = sorted((round(rng.uniform(5, 30), 6) for _ in cands), reverse=True)
        for k, (d, s) in enumerate(zip(cands, scores)):
            run.append((qid, d, k + 1, f"{s}"))
    return qrels, run


def realistic(rng):
    qrels, run = [], []
    for i in range(200):
        qid = f"Q{i:03d}"
        docs = rng.sample(range(20000), 130)
        judged = [(f"D{d}", rng.choices([0, 1, 2, 3], weights=[12, 5, 3, 1])[0]) for d in docs[:30]]
        qrels.append((qid, judged))
        ret = docs[:18] + docs[30:112]
        rng.shuffle(ret)
        score = rng.uniform(20, 40)
        for k, d in enumerate(ret):  # best first, as runs are written; some ties
            run.append((qid, f"D{d}", k + 1, f"{score:.3f}"))
            score -= rng.choice([0, 0.001, 0.01, 0.05, 0.2])
    return qrels, run


def run_jsonl(path, lines, scores=True, text=True):
    """A TREC run as loom-retrieve JSONL: one record per query, hits best first."""
    by_q = {}
    for qid, doc, _rank, score in lines:
        by_q.setdefault(qid, []).append((doc, score))
    with open(path, "w", encoding="utf-8") as f:
        for qid, hits in by_q.items():
            hits.sort(key=lambda h: -float.fromhex(h[1]) if h[1].startswith("0x") else -float(h[1]))
            out = []
            for r, (doc, score) in enumerate(hits, 1):
                h = {"id": doc}
                if scores:
                    v = float.fromhex(score) if score.startswith("0x") else float(score)
                    # JSON has no infinity: the largest finite numbers rank the same here
                    h["score"] = v if math.isfinite(v) else math.copysign(1.7e308, v)
                h["rank"] = r
                if text:
                    h["text"] = f"text of {doc}"
                out.append(h)
            f.write(json.dumps({"id": qid, "text": f"query {qid}", "hits": out}, ensure_ascii=False) + "\n")


def qrels_jsonl(path, qrels):
    """Half the queries one record per judgment, half one record with a relevance object."""
    with open(path, "w", encoding="utf-8") as f:
        for i, (qid, docs) in enumerate(qrels):
            if i % 2:
                f.write(json.dumps({"query_id": qid, "relevance": dict(docs)}, ensure_ascii=False) + "\n")
            else:
                for doc, rel in docs:
                    f.write(json.dumps({"qid": qid, "doc_id": doc, "relevance": rel}, ensure_ascii=False) + "\n")


# ---- expected values ----------------------------------------------------------------------------

def pytrec_check(qrels, run_lines, measures, level, expected):
    """pytrec_eval must give trec_eval's per-query values exactly, and their -c means."""
    if level < 1:
        return 0  # pytrec_eval takes positive relevance levels only
    q = {qid: {d: r for d, r in docs} for qid, docs in qrels}
    r = {}
    for qid, doc, _rank, score in run_lines:
        v = float.fromhex(score) if score.startswith("0x") else float(score)
        r.setdefault(qid, {})[doc] = v
    ev = pytrec_eval.RelevanceEvaluator(q, set(measures), relevance_level=level)
    got = ev.evaluate(r)
    per = {}
    for name, qid, value in expected:
        per.setdefault(qid, {})[name] = value
    n = 0
    for qid, vals in got.items():
        for name, v in vals.items():
            if name in ("num_q", "runid"):
                continue
            want = float(per[qid][name])
            assert v == want, (qid, name, v, want)
            n += 1
    for name, value in per["all"].items():
        if name.startswith("num_"):
            continue
        s = 0.0
        for qid in sorted(got, key=lambda s: s.encode()):
            s += got[qid][name]
        assert s / len(qrels) == float(value), (name, s / len(qrels), value)
    return n


def read_text(path):
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True, text=True).stdout
    return open(path).read()


def compress(path):
    subprocess.run(["zstd", "-q", "-19", "-f", "--rm", path, "-o", path + ".zst"], check=True)
    return os.path.basename(path) + ".zst"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trec-eval-src", help="trec_eval 9.0.8 source folder or tarball (default: download)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        src = args.trec_eval_src
        if not src:
            src = os.path.join(tmp, "trec_eval-9.0.8.tar.gz")
            with urllib.request.urlopen(TARBALL_URL) as resp, open(src, "wb") as f:
                f.write(resp.read())
        release, precise = build_trec_eval(os.path.abspath(src), tmp)
        checked = 0

        def case(name, qrels_file, run_file, level, gain, measures, qrels, run_lines,
                 te_qrels=None, te_run=None, expected_from=None):
            """Runs trec_eval for one case and records it in cases.tsv."""
            nonlocal checked
            p = lambda f: os.path.join(OUT, f)
            te_qrels = te_qrels or p(qrels_file)
            te_run = te_run or p(run_file)
            loom_specs = list(measures) + [f"recip_rank_cut.{k}" for k in RR_CUTS]
            if expected_from:
                exp_file, table_file = expected_from
            else:
                text = trec_eval(precise, te_qrels, te_run, measures, level)
                rows = parse_table(text)
                checked += pytrec_check(qrels, run_lines, measures, level, rows)
                for k in RR_CUTS:
                    for n, qid, v in parse_table(trec_eval(precise, te_qrels, te_run, ["recip_rank"], level, k)):
                        rows.append((f"recip_rank_cut_{k}", qid, v))
                exp_file, table_file = f"{name}.expected", f"{name}.table"
                with open(p(exp_file), "w") as f:
                    f.writelines(f"{n}\t{q}\t{v}\n" for n, q, v in rows)
                with open(p(table_file), "w") as f:
                    f.write(trec_eval(release, te_qrels, te_run, measures, level))
                if os.path.getsize(p(exp_file)) > 16384:
                    exp_file = compress(p(exp_file))
                if os.path.getsize(p(table_file)) > 16384:
                    table_file = compress(p(table_file))
            cases.append([name, qrels_file, run_file, str(level), gain, " ".join(loom_specs), exp_file, table_file])
            return exp_file, table_file

        # graded
        qrels, run = graded(random.Random(20240601))
        write_qrels(os.path.join(OUT, "graded.qrels"), qrels)
        write_run(os.path.join(OUT, "graded.run"), run)
        base = case("graded", "graded.qrels", "graded.run", 1, "linear", RICH, qrels, run)
        case("graded-level0", "graded.qrels", "graded.run", 0, "linear", RICH, qrels, run)
        case("graded-level2", "graded.qrels", "graded.run", 2, "linear", RICH, qrels, run)
        exp_qrels = [(qid, [(d, 2 ** r - 1 if r > 0 else r) for d, r in docs]) for qid, docs in qrels]
        write_qrels(os.path.join(tmp, "graded-exp.qrels"), exp_qrels)
        case("graded-exp", "graded.qrels", "graded.run", 1, "exp", RICH, exp_qrels, run,
             te_qrels=os.path.join(tmp, "graded-exp.qrels"))
        run_jsonl(os.path.join(OUT, "graded.run.jsonl"), run)
        qrels_jsonl(os.path.join(OUT, "graded.qrels.jsonl"), qrels)
        case("graded-jsonl", compress(os.path.join(OUT, "graded.qrels.jsonl")), compress(os.path.join(OUT, "graded.run.jsonl")),
             1, "linear", RICH, qrels, run, expected_from=base)

        # ranks: JSONL hits without scores, scored -rank
        rq, rr = realistic(random.Random(7))
        rq, rr = rq[:10], [l for l in rr if l[0] < "Q010"]
        write_qrels(os.path.join(OUT, "ranks.qrels"), rq)
        twin = [(q, d, k, f"{-k}") for q, d, k, _s in rr]
        write_run(os.path.join(tmp, "ranks.run"), twin)
        run_jsonl(os.path.join(OUT, "ranks.run.jsonl"), twin, scores=False, text=False)
        case("ranks", "ranks.qrels", "ranks.run.jsonl", 1, "linear", ["map", "P.5,10", "ndcg_cut.10", "recip_rank"],
             rq, twin, te_run=os.path.join(tmp, "ranks.run"))

        # binary
        qrels, run = binary(random.Random(99))
        write_qrels(os.path.join(OUT, "binary.qrels"), qrels)
        write_run(os.path.join(OUT, "binary.run"), run)
        case("binary", "binary.qrels", "binary.run", 1, "linear",
             ["num_q", "num_rel", "num_rel_ret", "map", "recip_rank", "recall.10,50,100", "ndcg_cut.10", "success.1,10"],
             qrels, run)
        cases[-1][2] = compress(os.path.join(OUT, "binary.run"))

        # realistic
        qrels, run = realistic(random.Random(2025))
        write_qrels(os.path.join(OUT, "realistic.qrels"), qrels)
        write_run(os.path.join(OUT, "realistic.run"), run)
        case("realistic", "realistic.qrels", "realistic.run", 1, "linear",
             ["num_q", "num_ret", "num_rel", "num_rel_ret", "map", "Rprec", "recip_rank", "P.5,10,20", "recall.10,100",
              "ndcg", "ndcg_cut.5,10,20", "map_cut.10,100", "success.1,5"], qrels, run)
        # Inputs compressed after trec_eval has read them (the tests read them through zstd).
        cases[-1][1] = compress(os.path.join(OUT, "realistic.qrels"))
        cases[-1][2] = compress(os.path.join(OUT, "realistic.run"))

        # empty run: trec_eval refuses it; -c semantics written here
        qrels, _ = graded(random.Random(20240601))
        open(os.path.join(OUT, "empty.run"), "w").close()
        rows = parse_table(read_text(os.path.join(OUT, base[0])))
        names = [n for n, q, v in rows if q == "all"]
        with open(os.path.join(OUT, "empty.expected"), "w") as fe, open(os.path.join(OUT, "empty.table"), "w") as ft:
            for n in names:
                if n in ("num_q", "num_ret", "num_rel", "num_rel_ret"):
                    v = {"num_q": len(qrels), "num_rel": sum(r > 0 for _, docs in qrels for _, r in docs)}.get(n, 0)
                    fe.write(f"{n}\tall\t{v}\n")
                    ft.write(f"{n:<22}\tall\t{v}\n")
                else:
                    fe.write(f"{n}\tall\t0\n")
                    if not n.startswith("recip_rank_cut"):
                        ft.write(f"{n:<22}\tall\t{0.0:6.4f}\n")
        cases.append(["empty", "graded.qrels", "empty.run", "1", "linear", " ".join(RICH + [f"recip_rank_cut.{k}" for k in RR_CUTS]),
                      "empty.expected", "empty.table"])

    with open(os.path.join(OUT, "cases.tsv"), "w") as f:
        f.write("# name\tqrels\trun\trelevance_level\tgain\tmeasures\texpected\ttable"
                "  (tests/reference/gen_eval_retrieval_goldens.py; trec_eval 9.0.8 -c -q)\n")
        for c in cases:
            f.write("\t".join(c) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(cases)} cases, {checked} per-query values equal in trec_eval and pytrec_eval, "
          f"{total // 1024} KiB in {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
