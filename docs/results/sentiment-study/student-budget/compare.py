"""Student-budget side experiment (#10): per budget (epochs per stage), the gradual 3-layer student's
held-out and dev accuracy over the seeds; the budget chosen on heldout only; each seed's exact McNemar
test (scipy) on dev against the same-budget truncated baseline and against the teacher, and the test
on all seeds' paired decisions pooled. Usage: python compare.py OUT (a finished run.py folder)."""
import glob, json, os, re, statistics, sys
import numpy as np
from selfteach_pipeline.results.significance import mcnemar_p

out = sys.argv[1]


def seed_rows(name):
    """{seed: (row, correct)} from results/NAME_sSEED.valid.json (or NAME.valid.json: the teacher)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(out, "results", f"{name}*.valid.json"))):
        m = re.fullmatch(re.escape(name) + r"(?:_s(\d+))?\.valid\.json", os.path.basename(path))
        if not m:
            continue
        row = json.load(open(path))
        o = json.load(open(os.path.join(os.path.dirname(path), row["outputs"])))
        found[int(m.group(1) or 0)] = (row, np.asarray(o["predictions"]) == np.asarray(o["targets"]))
    return found


def mean_sd(values):
    return round(statistics.mean(values), 2), (round(statistics.stdev(values), 2) if len(values) > 1 else None)


teacher_row, teacher_ok = seed_rows("teacher_enc6")[0]
budgets = sorted({int(m.group(1)) for p in glob.glob(os.path.join(out, "results", "gradual_e*_enc3_s*.valid.json"))
                  if (m := re.match(r"gradual_e(\d+)_enc3_s", os.path.basename(p)))})
result = {"teacher": {"dev": teacher_row["glue_score"], "heldout": teacher_row["valid_glue_score"]}, "budgets": []}
for e in budgets:
    student, same = seed_rows(f"gradual_e{e}_enc3"), seed_rows(f"truncated_same_budget_e{e}_enc3")
    per_seed, mine, theirs = [], [], []
    for s, (row, ok) in sorted(student.items()):
        base_ok = same[s][1]
        mine.append(ok), theirs.append(base_ok)
        per_seed.append({"seed": s, "heldout": row["valid_glue_score"], "dev": row["glue_score"],
                         "truncated_same_budget": same[s][0]["glue_score"],
                         "p_vs_truncated_same_budget": round(mcnemar_p(ok, base_ok), 4),
                         "p_vs_teacher": round(mcnemar_p(ok, teacher_ok), 4)})
    heldout_mean, heldout_sd = mean_sd([r["heldout"] for r in per_seed])
    dev_mean, dev_sd = mean_sd([r["dev"] for r in per_seed])
    base_mean = mean_sd([r["truncated_same_budget"] for r in per_seed])[0]
    result["budgets"].append({
        "epochs_per_stage": e, "updates_per_stage": student[min(student)][0].get("updates"),
        "heldout_mean": heldout_mean, "heldout_sd": heldout_sd, "dev_mean": dev_mean, "dev_sd": dev_sd,
        "percent_of_teacher_dev": round(100 * dev_mean / teacher_row["glue_score"], 1),
        "truncated_same_budget_mean": base_mean, "points_above_truncated": round(dev_mean - base_mean, 2),
        "largest_p_vs_truncated_same_budget": max(r["p_vs_truncated_same_budget"] for r in per_seed),
        "pooled_p_vs_truncated_same_budget": round(mcnemar_p(np.concatenate(mine), np.concatenate(theirs)), 4),
        "seeds": per_seed})
# the choice: the highest held-out mean (ties: the smaller budget); dev plays no part in it
pick = max(result["budgets"], key=lambda r: (r["heldout_mean"], -r["epochs_per_stage"]))
result["picked_on_heldout"] = pick["epochs_per_stage"]
result["target_99_percent_met"] = (pick["percent_of_teacher_dev"] >= 99.0 and pick["points_above_truncated"] >= 1
                                   and pick["largest_p_vs_truncated_same_budget"] < 0.05)
print(json.dumps(result, indent=1))
