"""head-lr side experiment: per seed and pooled exact McNemar of headlr vs plain online exit 3."""
import json, statistics, sys
import numpy as np
from selfteach_pipeline.results.significance import mcnemar_p
out, scale = sys.argv[1], sys.argv[2]
rows, pooled_a, pooled_b = [], [], []
for s in (1, 2, 3):
    o = {}
    for name in (f"online_enc3_s{s}", f"headlr{scale}_enc3_s{s}"):
        d = json.load(open(f"{out}/results/outputs/{name}.valid.json"))
        o[name] = np.asarray(d["predictions"]) == np.asarray(d["targets"])
    a, b = o[f"headlr{scale}_enc3_s{s}"], o[f"online_enc3_s{s}"]
    pooled_a.append(a); pooled_b.append(b)
    rows.append(dict(seed=s, head_lr=round(100 * a.mean(), 2), plain=round(100 * b.mean(), 2),
                     only_head_lr=int((a & ~b).sum()), only_plain=int((~a & b).sum()), p_value=round(mcnemar_p(a, b), 4)))
A, B = np.concatenate(pooled_a), np.concatenate(pooled_b)
summary = dict(head_lr_scale=float(scale), seeds=rows,
               head_lr_mean=round(statistics.mean(r["head_lr"] for r in rows), 2),
               head_lr_sd=round(statistics.stdev(r["head_lr"] for r in rows), 2),
               plain_mean=round(statistics.mean(r["plain"] for r in rows), 2),
               plain_sd=round(statistics.stdev(r["plain"] for r in rows), 2),
               pooled_p_value=round(mcnemar_p(A, B), 4), pooled_examples=int(A.size))
print(json.dumps(summary, indent=1))
