"""The depth pick: for a quality floor F, the shallowest self-taught student or exit whose score on
validation is at least F × the teacher's, with its test score, parameters and measured speed-up: the
answer a user wants from a results table. Only validation scores choose; the test score is reported
for the pick, never compared.

Candidates are the self-taught rows (results.rows.SELF_TAUGHT: offline, online, gradual,
online-gradual, seqkd students and the anydepth exits) with a validation score (valid_mean, the mean
over seeds); the baselines are the comparison, not candidates. Among the candidates of the shallowest
depth that has one meeting the floor, the highest validation score wins (then the fewest parameters).
Where none does, the pick is the teacher itself.
"""
from typing import List, Optional

from selfteach_pipeline.results.rows import SELF_TAUGHT

SPEED_KEYS = ("sentences_per_s", "examples_per_s")


def _speed(row) -> Optional[float]:
    return next((row[k] for k in SPEED_KEYS if row.get(k)), None)


def pick(rows: List[dict], floor: float) -> Optional[dict]:
    """The pick among aggregated rows of one dataset (results.rows.aggregate), or None where the
    teacher has no positive validation score (nothing to measure a fraction of: a score of 0, or a
    negative correlation or MCC, makes every or no model "within F" of it)."""
    teacher = next((r for r in rows if r["method"] == "teacher"), None)
    if teacher is None or teacher.get("valid_mean") is None or teacher["valid_mean"] <= 0:
        return None
    target = floor * teacher["valid_mean"]
    candidates = [r for r in rows if r["method"] in SELF_TAUGHT and r.get("valid_mean") is not None]
    meeting = [r for r in candidates if r["valid_mean"] >= target]
    chosen = min(meeting, key=lambda r: (r["depth"], -r["valid_mean"], r["params"])) if meeting else teacher
    per_depth = {}
    for r in sorted(candidates, key=lambda r: (r["depth"], -r["valid_mean"], r["params"])):
        per_depth.setdefault(r["depth"], r)  # each depth's best on validation
    teacher_speed, speed = _speed(teacher), _speed(chosen)
    return {
        "dataset": teacher.get("dataset", ""),
        "floor": floor,
        "teacher": teacher["name"],
        "teacher_valid": teacher["valid_mean"],
        "target_valid": round(target, 2),
        "met": bool(meeting),
        "name": chosen["name"],
        "method": chosen["method"],
        "depth": chosen["depth"],
        "valid": chosen["valid_mean"],
        "valid_fraction_of_teacher": round(chosen["valid_mean"] / teacher["valid_mean"], 4),
        "test_mean": chosen["mean"],
        "test_sd": chosen.get("sd"),
        "test_ci": [chosen.get("ci_low"), chosen.get("ci_high")],
        "teacher_test": teacher["mean"],
        "params": chosen["params"],
        "params_fraction_of_teacher": round(chosen["params"] / teacher["params"], 4),
        "speed": speed,
        "speed_up": round(speed / teacher_speed, 2) if speed and teacher_speed else None,
        # where validation is the reported split itself (a GLUE setting without a held-out split)
        "validated_on": teacher.get("valid_subset") or "valid",
        "same_split_as_reported": bool(teacher.get("valid_subset")) and teacher.get("valid_subset") == teacher.get("subset"),
        "best_per_depth": [{"depth": d, "name": r["name"], "method": r["method"], "valid": r["valid_mean"],
                            "meets": r["valid_mean"] >= target} for d, r in sorted(per_depth.items())],
    }


def markdown(choice: dict, metric_label: str, speed_label: str, reported: str = "test") -> str:
    """The pick as a results.md section: each depth's best candidate on validation, then the pick."""
    f = choice["floor"]
    lines = [f"## Picking a depth: the shallowest student within {f:g} × the teacher on validation", "",
             f"The teacher ({choice['teacher']}) scores {choice['teacher_valid']:.2f} {metric_label} on "
             f"validation; the floor is {f:g} × that = {choice['target_valid']:.2f}.", "",
             "| depth | best self-taught model on validation | method | valid | of the teacher's | meets the floor |",
             "|---|---|---|---|---|---|"]
    for d in choice["best_per_depth"]:
        lines.append(f"| {d['depth']} | {d['name']} | {d['method']} | {d['valid']:.2f} | "
                     f"{d['valid'] / choice['teacher_valid']:.1%} | {'yes' if d['meets'] else 'no'} |")
    sd = f" ± {choice['test_sd']:.2f}" if choice.get("test_sd") is not None else ""
    ci = choice["test_ci"]
    ci_text = f", 95 % CI {ci[0]:.2f}–{ci[1]:.2f}" if ci[0] is not None else ""
    speed = (f"; {choice['speed']:.1f} {speed_label}, {choice['speed_up']:.2f}× the teacher's"
             if choice.get("speed_up") else "")
    verdict = (f"**Pick: {choice['name']}** ({choice['method']}, depth {choice['depth']}): valid "
               f"{choice['valid']:.2f} ({choice['valid_fraction_of_teacher']:.1%} of the teacher's); {reported} "
               f"{choice['test_mean']:.2f}{sd}{ci_text} against the teacher's {choice['teacher_test']:.2f}; "
               f"{choice['params']:,} parameters ({choice['params_fraction_of_teacher']:.0%} of the "
               f"teacher's){speed}."
               if choice["met"] else
               f"**No self-taught model meets the floor on validation**: the pick is the teacher itself "
               f"({choice['name']}, {reported} {choice['test_mean']:.2f}).")
    notes = [f"only validation scores choose (the mean over seeds); the {reported} score is the pick's, "
             "reported, not compared; the baselines are not candidates",
             "speed-up: the pick's speed over the teacher's, each from its own run in the pipeline "
             "(other work may have shared the cores), so a rough figure; bench/ measures speed properly"]
    if choice.get("same_split_as_reported"):
        notes.append(f"there is no held-out split here, so the pick is made on {choice['validated_on']}, the "
                     "split the table reports: its score is not an independent estimate (GLUE's practice, where "
                     "dev is the validation set and test is unlabelled)")
    return "\n".join(lines + ["", verdict, ""] + [f"- {n}" for n in notes]) + "\n"
