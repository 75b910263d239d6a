"""Combines the KL study's runs (one per teacher) into results.json, contrasts.json and results.md.

Each arm's row says its own updates and training seconds and its total compute: its own plus the
teacher's and every earlier stage it needed (gradual's first stage; seqkd's decoding of the training set).
The sweep's extra points are shared by all arms and counted in none. Every contrast is arm a minus arm
b with its sign, a hierarchical-bootstrap interval and an exact sign-flip p over the units
(selfteach_pipeline/contrasts.py), beside sacreBLEU's paired-bootstrap p of each unit.
"""
import glob
import json
import os
import re
import tarfile
import tempfile
from typing import Dict, List, Optional

import numpy as np

from selfteach_pipeline.contrasts import (Unit, accuracy_of_sums, accuracy_statistics, bleu_of_sums, bleu_statistics,
                                         contrast)
from selfteach_pipeline.files import atomic_write_text, usual_file_mode, written_beside
from selfteach_pipeline.kl_families import FAMILIES
from selfteach_pipeline.kl_study import kd_name
from selfteach_pipeline.scores import bleu_paired_p, mcnemar_p

ARMS = ("teacher", "teacher_longer", "kd", "ce_same_init", "ce_same_init_long", "seqkd", "gradual",
        "scratch_equal_compute", "truncated_equal_compute")
ARM_LABELS = {
    "teacher": "the teacher (converged, lr annealed to 0)",
    "teacher_longer": "teacher trained on for the students' updates (controls for annealing)",
    "kd": "teacher's first k layers + KD (α, T picked on valid)",
    "ce_same_init": "the same layers, cross-entropy only, same updates (isolates the KL)",
    "ce_same_init_long": "the same, as many updates as kd's training time (equal student time)",
    "seqkd": "the same layers, cross-entropy on the teacher's beam outputs",
    "gradual": "teacher → via layers → k, half the updates each (kd's total)",
    "scratch_equal_compute": "k layers from random init, teacher's + student's updates (equal total updates)",
    "truncated_equal_compute": "the pretrained first k layers, teacher's + student's updates (equal total updates)",
}
# name, a, b, subset (the teacher's margin is judged on valid: it chose the sizes); SCRATCH is the
# family's equal-compute baseline, `seqkd` contrasts are translation's only
CONTRASTS = (
    ("kd_vs_ce_same_init", "kd", "ce_same_init", "test"),
    ("kd_vs_ce_same_init_long", "kd", "ce_same_init_long", "test"),
    ("gradual_vs_kd_equal_updates", "gradual", "kd", "test"),
    ("kd_vs_SCRATCH", "kd", "SCRATCH", "test"),
    ("teacher_longer_vs_teacher", "teacher_longer", "teacher", "test"),
    ("teacher_vs_scratch_valid", "teacher", "SCRATCH", "valid"),
    ("seqkd_vs_ce_same_init", "seqkd", "ce_same_init", "test"),
    ("seqkd_vs_kd", "seqkd", "kd", "test"),
)


class ReportError(ValueError):
    pass


class Run:
    def __init__(self, folder: str):
        self.folder = folder
        self.settings = self._json("settings.json")
        self.family = FAMILIES[self.settings.get("family", "translation")]
        self.teacher = f"teacher_seed{self.settings['teacher_seed']}"
        sweep = self._json("sweep.json", required=False)
        if self.settings["kd_alpha"]:
            self.alpha, self.temperature = float(self.settings["kd_alpha"]), float(self.settings["kd_temperature"])
        elif sweep:
            self.alpha, self.temperature = sweep["picked"]["kd_alpha"], sweep["picked"]["kd_temperature"]
        else:  # the sweep has not picked yet: every arm that needs the pick is missing
            self.alpha = self.temperature = None
        self.sweep = sweep

    def _json(self, name: str, required: bool = True) -> Optional[dict]:
        path = os.path.join(self.folder, name)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except OSError:
            if required:
                raise ReportError(f"{path}: missing (is {self.folder} a finished selfteach-kl-study run?)") from None
            return None

    def row_name(self, arm: str, seed: int) -> str:
        if arm == "teacher":
            return "teacher"
        if arm == "kd":
            return kd_name(self.alpha, self.temperature, seed) if self.alpha is not None else "kd_not_picked_yet"
        return f"{arm}_s{seed}"

    def row(self, name: str) -> dict:
        return self._json(os.path.join("results", f"{name}.json"))

    def outputs(self, name: str) -> dict:
        return self._json(os.path.join("results", self.row(name)["outputs"]))

    def stage_seconds(self, stage: str) -> float:
        return float((self._json(os.path.join("stages", f"{stage}.done"), required=False) or {}).get("seconds", 0.0))

    def log_seconds(self, name: str) -> float:
        """fairseq's own 'done training in N seconds' of the training's (last) process."""
        path = os.path.join(self.folder, "logs", f"train_{name}.log")
        with open(path, encoding="utf-8", errors="replace") as f:
            found = re.findall(r"done training in ([0-9.]+) seconds", f.read())
        if not found:
            raise ReportError(f"{path}: no 'done training in N seconds' line")
        return float(found[-1])

    def compute(self, arm: str, seed: int) -> Dict[str, float]:
        """own and total (updates, seconds) of the arm's model for this seed."""
        name = self.row_name(arm, seed)
        own = dict(self.row(name))
        if arm == "teacher_longer":  # its checkpoint's clock started at the teacher's (--finetune-from-model)
            own["train_seconds"] = self.log_seconds(name)
        total_u, total_s = own["updates"], own["train_seconds"]
        if arm not in ("teacher", self.family.scratch_arm):
            teacher = self.row("teacher")
            total_u, total_s = total_u + teacher["updates"], total_s + teacher["train_seconds"]
        if arm == "gradual":
            via = self.settings["student_updates"] // 2
            total_u += via
            total_s += self.log_seconds(f"gradual_via{self.settings['gradual_via']}_s{seed}")
        if arm == "seqkd":
            total_s += self.stage_seconds("decode_teacher_train")
        return {"updates": own["updates"], "seconds": own["train_seconds"], "total_updates": total_u,
                "total_seconds": round(total_s, 1)}


def archive(folder: str, dest: str) -> int:
    """DEST (a .tar.gz): what the report reads of the run FOLDER (its settings, the sweep's pick, every
    row and output, the stages' markers, the training logs), so the tables can be made again without the
    models; written under a temporary name and renamed once whole."""
    if not dest.endswith(".tar.gz"):
        raise ReportError(f"--archive writes a .tar.gz (not {dest})")
    run = Run(folder)
    names = [n for n in ("settings.json", "sweep.json", "update_cost.json") if os.path.exists(os.path.join(folder, n))]
    for pattern in ("results/**/*.json", "stages/*.done", "logs/train_*.log"):
        names += sorted(os.path.relpath(p, folder) for p in glob.glob(os.path.join(folder, pattern), recursive=True))
    with written_beside(dest, ".tar.gz") as (fd, tmp):
        os.close(fd)
        with tarfile.open(tmp, "w:gz") as tar:
            for name in names:
                tar.add(os.path.join(folder, name), arcname=os.path.join(run.teacher, name))
        os.chmod(tmp, usual_file_mode())
    print(f"selfteach-kl-study: {len(names)} files of {folder} → {dest} (selfteach-kl-study --report reads it)")
    return 0


def unpacked(path: str, into: str) -> str:
    """A run folder, or the folder inside an --archive .tar.gz (extracted under INTO)."""
    if not path.endswith(".tar.gz"):
        return path
    try:
        with tarfile.open(path, "r:gz") as tar:
            tops = {m.name.split("/")[0] for m in tar.getmembers()}
            if len(tops) != 1:
                raise ReportError(f"{path}: not one run's archive (selfteach-kl-study --archive)")
            target = os.path.join(into, str(len(os.listdir(into))))
            tar.extractall(target, filter="data")
    except (OSError, tarfile.TarError) as e:
        raise ReportError(f"{path}: {e}") from None
    return os.path.join(target, tops.pop())


def report(folders: List[str], out: str) -> int:
    with tempfile.TemporaryDirectory() as into:
        return _report([unpacked(f, into) for f in folders], out)


def _report(folders: List[str], out: str) -> int:
    runs = [Run(f) for f in folders]
    if len({r.teacher for r in runs}) != len(runs):
        raise ReportError("two runs have the same teacher_seed: each run is one teacher")
    family = runs[0].family
    if any(r.family is not family for r in runs):
        raise ReportError("the runs are of different families (settings.json's family)")
    key, scratch = family.score_key, family.scratch_arm
    units = [(run, seed) for run in runs for seed in run.settings["student_seeds"]]
    present = [a for a in ARMS if a not in ("seqkd", "scratch_equal_compute", "truncated_equal_compute")
               or a == scratch or (a == "seqkd" and family.has_seqkd)]
    # a run still going: an arm some unit has not scored yet is listed as missing, in no table or contrast
    missing = [a for a in present if any(not os.path.exists(os.path.join(r.folder, "results", f"{r.row_name(a, s)}.json"))
                                         for r, s in units)]
    if "teacher" in missing:
        raise ReportError("the teacher has no results/teacher.json yet: nothing to report")
    present = [a for a in present if a not in missing]
    rows, arms = [], {}
    for arm in present:
        per_unit = []
        for run, seed in units:
            name = run.row_name(arm, seed)
            row = run.row(name)
            valid = run._json(os.path.join("results", f"{name}.valid.json"), required=False)
            per_unit.append({"teacher": run.teacher, "seed": seed, "row": name, "score": row[key],
                             "valid_score": valid[key] if valid else None, "params": row["params"],
                             "layers": row.get("decoder_layers", row.get("encoder_layers")), **run.compute(arm, seed)})
        rows.extend(dict(arm=arm, **u) for u in per_unit)
        scores = np.array([u["score"] for u in per_unit])
        valids = [u["valid_score"] for u in per_unit if u["valid_score"] is not None]
        arms[arm] = {"label": ARM_LABELS[arm], "score_mean": round(float(scores.mean()), 2),
                     "score_sd": round(float(scores.std(ddof=1)), 2) if len(scores) > 1 else None,
                     "score_min": float(scores.min()), "score_max": float(scores.max()),
                     "valid_score_mean": round(float(np.mean(valids)), 2) if valids else None,
                     "layers": per_unit[0]["layers"], "params": per_unit[0]["params"],
                     **{k: round(float(np.mean([u[k] for u in per_unit])), 1)
                        for k in ("updates", "seconds", "total_updates", "total_seconds")}}
    wanted = [(name.replace("SCRATCH", scratch), a, b.replace("SCRATCH", scratch), subset)
              for name, a, b, subset in CONTRASTS if family.has_seqkd or "seqkd" not in name]
    contrasts = [contrast_entry(name, a, b, subset, units) for name, a, b, subset in wanted
                 if a in present and b in present]
    teacher = arms["teacher"]["score_mean"]
    students = [a for a in present if a not in ("teacher", "teacher_longer", scratch)]
    best = max(students, key=lambda a: arms[a]["score_mean"]) if students else None
    summary = {"family": family.name, "metric": family.metric, "best_student": best,
               "best_student_fraction_of_teacher": round(arms[best]["score_mean"] / teacher, 3)
               if best and teacher else None,
               f"best_student_above_{scratch}": (arms[best]["score_mean"] > arms[scratch]["score_mean"]
                                                 if best and scratch in arms else None),
               "missing_arms": missing, "missing_contrasts": [w[0] for w in wanted if w[1] in missing or w[2] in missing],
               "units": len(units), "teachers": len(runs),
               "kd": [{"teacher": r.teacher, "kd_alpha": r.alpha, "kd_temperature": r.temperature} for r in runs],
               "sweeps": {r.teacher: r.sweep for r in runs if r.sweep}}
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "results.json"),
                 json.dumps({"arms": arms, "rows": rows, "summary": summary}, indent=1) + "\n")
    atomic_write_text(os.path.join(out, "contrasts.json"), json.dumps(contrasts, indent=1) + "\n")
    atomic_write_text(os.path.join(out, "results.md"), markdown(arms, contrasts, summary, scratch))
    print(f"selfteach-kl-study report: {len(units)} units from {len(runs)} run(s) → {out}/results.md, "
          "results.json, contrasts.json")
    return 0


def contrast_entry(name: str, a: str, b: str, subset: str, units) -> dict:
    built, unit_p = [], []
    for run, seed in units:
        rows = [run.row_name(a, seed), run.row_name(b, seed)]
        if subset == "valid":
            rows = [f"{r}.valid" for r in rows]
        out_a, out_b = run.outputs(rows[0]), run.outputs(rows[1])
        if run.family.name == "translation":
            refs = out_a["references"]
            stats = [bleu_statistics(o["hypotheses"], refs) for o in (out_a, out_b)]
            unit_p.append(round(bleu_paired_p(out_a["hypotheses"], out_b["hypotheses"], refs), 4))
        else:
            stats = [accuracy_statistics(o["predictions"], o["targets"]) for o in (out_a, out_b)]
            unit_p.append(round(mcnemar_p(stats[0][:, 0], stats[1][:, 0]), 4))
        built.append(Unit(run.teacher, seed, *stats))
    translation = units[0][0].family.name == "translation"
    result = contrast(built, bleu_of_sums if translation else accuracy_of_sums)
    for entry, p in zip(result["per_unit"], unit_p):
        entry["paired_p"] = p
    return {"name": name, "a": a, "b": b, "delta": result["delta"], "ci_low": result["ci_low"],
            "ci_high": result["ci_high"], "p_value": result["p_value"],
            "test": "exact two-sided sign-flip over units; interval: hierarchical bootstrap (teachers, seeds, "
                    "sentences or examples), 1,000 replicates",
            "units": result["units"],
            "metric": (f"sacreBLEU ({subset}, detokenised, lowercased)" if translation else
                       f"accuracy ({'dev' if subset == 'test' else 'heldout'}, %)"),
            "per_unit_test": "sacreBLEU's paired bootstrap" if translation else "exact McNemar",
            "per_unit": result["per_unit"]}


def markdown(arms: dict, contrasts: List[dict], summary: dict, scratch: str) -> str:
    metric = summary["metric"]
    test = "test" if summary["family"] == "translation" else "dev"
    lines = ["# Does the self-teaching KL pay? Results", "",
             f"{summary['units']} units ({summary['teachers']} teacher(s) × student seeds); {metric} on {test}, mean "
             "over units (min–max); valid where scored. Updates and seconds: the row's own training; total: "
             "with the teacher's and every earlier stage's (the sweep's extra points are in none).", "",
             f"| arm | what it controls for | layers | params | {test} {metric} | min–max | valid | own updates "
             "| own s | total updates | total s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for arm, a in arms.items():
        valid = "–" if a["valid_score_mean"] is None else f"{a['valid_score_mean']:.2f}"
        sd = f" ± {a['score_sd']:.2f}" if a["score_sd"] is not None else ""
        lines.append(f"| {arm} | {a['label']} | {a['layers']} | {a['params']:,} | {a['score_mean']:.2f}{sd} "
                     f"| {a['score_min']:.2f}–{a['score_max']:.2f} | {valid} | {a['updates']:.0f} "
                     f"| {a['seconds']:.0f} | {a['total_updates']:.0f} | {a['total_seconds']:.0f} |")
    per_test = contrasts[0]["per_unit_test"] if contrasts else "the paired test's"
    lines += ["", "Contrasts: a − b (positive: a better), 95 % hierarchical-bootstrap interval, exact sign-flip p "
              f"over the units; per unit, a − b and {per_test} p.", "",
              "| contrast | split | a − b | 95 % interval | sign-flip p | per unit: a − b (p) |",
              "|---|---|---|---|---|---|"]
    for c in contrasts:
        per = "; ".join(f"{u['a'] - u['b']:+.2f} ({u['paired_p']})" for u in c["per_unit"])
        split = c["metric"].split("(")[1].split(",")[0]
        lines.append(f"| {c['name']} | {split} | {c['delta']:+.2f} | [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] "
                     f"| {c['p_value']} ({c['units']} units) | {per} |")
    fraction, above = summary["best_student_fraction_of_teacher"], summary[f"best_student_above_{scratch}"]
    if summary["best_student"]:
        lines += ["", f"Best student: {summary['best_student']}, "
                  + (f"{100 * fraction:.1f} %" if fraction is not None else "– (the teacher scores 0)")
                  + f" of the teacher's {test} {metric}; above {scratch}: "
                  + ("–" if above is None else "yes" if above else "no") + "."]
    if summary["missing_arms"]:
        lines += ["", f"**Not finished yet** (no row for every unit): {', '.join(summary['missing_arms'])}; "
                  f"so no {', '.join(summary['missing_contrasts'])}."]
    lines.append("")
    return "\n".join(lines)
