"""Student-budget side experiment (#10): per budget, the gradual 2-layer student's valid and test
sacreBLEU over the seeds; the budget chosen on valid only; each seed's paired bootstrap (sacreBLEU,
1,000 resamples) against the same-budget scratch model, the teacher-budget scratch model and the teacher.
Usage: python compare.py OUT (a finished run.py folder)."""
import glob, json, os, re, statistics, sys
from selfteach_pipeline.results.significance import bleu_paired_p

out = sys.argv[1]
table = {r["name"]: r for r in json.load(open(os.path.join(out, "results.json")))}


def seed_rows(name):
    """{seed: (row, outputs)} of a table row, from results/NAME_sSEED.json (or NAME.json: the teacher)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(out, "results", f"{name}*.json"))):
        m = re.fullmatch(re.escape(name) + r"(?:_s(\d+))?\.json", os.path.basename(path))
        if not m:
            continue
        row = json.load(open(path))
        outputs = json.load(open(os.path.join(os.path.dirname(path), row["outputs"])))
        found[int(m.group(1) or 0)] = (row, outputs)
    return found


def mean_sd(values):
    return round(statistics.mean(values), 2), (round(statistics.stdev(values), 2) if len(values) > 1 else None)


teacher_row, teacher_out = seed_rows("teacher_dec4")[0]
teacher_budget = table["teacher_dec4"]["updates"]
scratch_tb = seed_rows("scratch_teacher_budget_dec2")
budgets = sorted(int(m.group(1)) for n in table if (m := re.fullmatch(r"gradual_u(\d+)_dec2", n)))
result = {"teacher": {"test": teacher_row["sacrebleu"], "valid": teacher_row["valid_sacrebleu"],
                      "updates": teacher_budget},
          "scratch_teacher_budget_dec2": dict(zip(("test_mean", "test_sd"),
                                                  mean_sd([r["sacrebleu"] for r, _ in scratch_tb.values()]))),
          "budgets": []}
for b in budgets:
    student, same = seed_rows(f"gradual_u{b}_dec2"), seed_rows(f"scratch_same_budget_u{b}_dec2")
    per_seed = []
    for s, (row, o) in sorted(student.items()):
        refs = o["references"]
        per_seed.append({
            "seed": s, "valid": row["valid_sacrebleu"], "test": row["sacrebleu"],
            "scratch_same_budget": same[s][0]["sacrebleu"],
            "p_vs_scratch_same_budget": round(bleu_paired_p(o["hypotheses"], same[s][1]["hypotheses"], refs), 4),
            "scratch_teacher_budget": scratch_tb[s][0]["sacrebleu"],
            "p_vs_scratch_teacher_budget": round(bleu_paired_p(o["hypotheses"], scratch_tb[s][1]["hypotheses"], refs), 4),
            "p_vs_teacher": round(bleu_paired_p(o["hypotheses"], teacher_out["hypotheses"], refs), 4)})
    valid_mean, valid_sd = mean_sd([r["valid"] for r in per_seed])
    test_mean, test_sd = mean_sd([r["test"] for r in per_seed])
    result["budgets"].append({
        "updates_per_stage": b, "valid_mean": valid_mean, "valid_sd": valid_sd, "test_mean": test_mean,
        "test_sd": test_sd, "percent_of_teacher_test": round(100 * test_mean / teacher_row["sacrebleu"], 1),
        "percent_of_teacher_valid": round(100 * valid_mean / teacher_row["valid_sacrebleu"], 1),
        "scratch_same_budget_mean": mean_sd([r["scratch_same_budget"] for r in per_seed])[0],
        "largest_p_vs_scratch_same_budget": max(r["p_vs_scratch_same_budget"] for r in per_seed),
        "seeds": per_seed})
# the choice: the highest valid mean (ties: the smaller budget); test plays no part in it
pick = max(result["budgets"], key=lambda r: (r["valid_mean"], -r["updates_per_stage"]))
result["picked_on_valid"] = pick["updates_per_stage"]
result["target_97_percent_met"] = pick["percent_of_teacher_test"] >= 97.0 and pick["largest_p_vs_scratch_same_budget"] < 0.05
print(json.dumps(result, indent=1))
