#!/usr/bin/env python3
"""Goldens for loom-eval compare's statistics (lib/eval/compare.h), from scipy.

  tests/reference/setup-venv-eval && tests/reference/.venv-eval/bin/python tests/reference/gen_eval_compare_goldens.py

Writes tests/reference/golden/eval_compare/ttest.json: paired samples (seeded: metric-like values
in [0, 1], ties, tiny and large n, all differences equal) with scipy.stats.ttest_rel's t
and two-sided p, and a grid of Student's t survival function values (scipy.stats.t.sf).
"""
import json, math, os, random

import scipy
from scipy import stats

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "golden", "eval_compare")
os.makedirs(out, exist_ok=True)
rng = random.Random(20261207)


def num(x):  # JSON has no nan or inf: null and "inf"/"-inf"
    x = float(x)
    return None if math.isnan(x) else x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


cases = []
for n in [2, 3, 5, 10, 30, 100, 1000]:
    for shift in [0.0, 0.01, 0.05, -0.2]:
        base = [rng.random() for _ in range(n)]
        new = [min(1.0, max(0.0, b + shift + rng.gauss(0, 0.1))) for b in base]
        if n >= 10 and shift == 0.01:  # metric values on a grid: many ties
            base = [round(b * 4) / 4 for b in base]
            new = [round(b * 4) / 4 for b in new]
        r = stats.ttest_rel(new, base)
        cases.append({"base": base, "new": new, "t": num(r.statistic), "p": num(r.pvalue)})
base = [0.5, 0.25, 0.75, 1.0]
for d in [0.125, 0.0]:  # every difference the same: scipy says t = inf, p = 0 (or nan, nan for 0)
    new = [b + d for b in base]
    r = stats.ttest_rel(new, base)
    cases.append({"base": base, "new": new, "t": num(r.statistic), "p": num(r.pvalue)})

sf = []
for df in [1, 2, 3, 4.5, 9, 29, 99, 999, 1e5]:
    for t in [-8.0, -2.5, -1.0, -0.1, 0.0, 0.05, 0.7, 1.0, 1.96, 2.5, 4.0, 8.0, 30.0]:
        sf.append({"t": t, "df": df, "sf": float(stats.t.sf(t, df))})

with open(os.path.join(out, "ttest.json"), "w") as f:
    json.dump({"scipy": scipy.__version__, "ttest_rel": cases, "t_sf": sf}, f)
print(f"{len(cases)} paired samples, {len(sf)} sf values -> {out}/ttest.json")
