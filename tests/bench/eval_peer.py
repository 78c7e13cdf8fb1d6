#!/usr/bin/env python3
"""The Python side of bench-eval: what a user runs instead of loom-eval, timed inside Python
(interpreter start and imports excluded).

  eval_peer.py retrieval QRELS RUN MEASURE...
      pytrec_eval (trec_eval's C code): parse_qrel and parse_run read the files, a
      RelevanceEvaluator computes MEASURES per query, the means are taken over every qrels query
      (as trec_eval -c: a query without results counts 0). Prints {"seconds", "parse_seconds",
      "metrics": {name: mean}}.
  eval_peer.py text ITEMS_JSONL
      Records {"prediction", "references": [...]}: sacrebleu corpus BLEU and chrF, rouge-score
      ROUGE-1/2/L/Lsum per item (max over references, mean F-measure), SQuAD v1.1 exact match and
      F1 (the official script's functions). Prints {"seconds", "metrics": {...}}.
"""
import collections, json, re, string, sys, time


def retrieval(qrels_path, run_path, measures):
    import pytrec_eval
    t0 = time.perf_counter()
    with open(qrels_path) as f:
        qrels = pytrec_eval.parse_qrel(f)
    with open(run_path) as f:
        run = pytrec_eval.parse_run(f)
    t1 = time.perf_counter()
    ev = pytrec_eval.RelevanceEvaluator(qrels, set(measures))
    per_query = ev.evaluate(run)
    sums = collections.defaultdict(float)
    for q, vals in per_query.items():
        for k, v in vals.items():
            sums[k] += v
    n = len(qrels)
    means = {k: v / n for k, v in sums.items()}
    t2 = time.perf_counter()
    print(json.dumps({"seconds": t2 - t0, "parse_seconds": t1 - t0, "metrics": means}))


def squad_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(pred, gold):
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def text(path):
    import sacrebleu
    from rouge_score import rouge_scorer
    items = [json.loads(l) for l in open(path)]
    t0 = time.perf_counter()
    preds = [it["prediction"] for it in items]
    refs = [it["references"] for it in items]
    nref = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else None for r in refs] for i in range(nref)]
    bleu = sacrebleu.corpus_bleu(preds, streams)
    chrf = sacrebleu.corpus_chrf(preds, streams)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"])
    rouge = collections.defaultdict(float)
    em = f1 = 0.0
    for p, r in zip(preds, refs):
        for k, v in scorer.score_multi(r, p).items():
            rouge[k] += v.fmeasure
        em += max(float(squad_normalize(p) == squad_normalize(g)) for g in r)
        f1 += max(squad_f1(p, g) for g in r)
    n = len(items)
    metrics = {"bleu": bleu.score, "chrf": chrf.score, "exact_match": 100 * em / n, "f1": 100 * f1 / n}
    metrics.update({k: v / n for k, v in rouge.items()})
    t1 = time.perf_counter()
    print(json.dumps({"seconds": t1 - t0, "metrics": metrics}))


if __name__ == "__main__":
    if sys.argv[1] == "retrieval":
        retrieval(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "text":
        text(sys.argv[2])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
