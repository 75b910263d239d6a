"""Does the self-teaching KL pay? One teacher's run of the controlled study, as a plan, for either family
(selfteach_pipeline/kl_families.py: translation, classification).

    selfteach-kl-study --out runs/kl-study/teacher1 [--set teacher_seed=1] [--dry-run]
    selfteach-kl-study --report runs/kl-study/teacher1 runs/kl-study/teacher2 --out docs/results/kl-study

A run trains one teacher (converged: its learning rate decays linearly to 0 over `teacher_updates`) and,
for each student seed, the arms below, all at `student_depth` decoder layers; every model is exported to
a plain fairseq checkpoint and scored (translation: decoded by plain fairseq-generate, no plugin):

  kd                     the teacher's first k layers, offline KD (α, T chosen on valid by the sweep)
  ce_same_init           the same layers, cross-entropy only, the same updates: isolates the KL term
  ce_same_init_long      the same, with as many updates as kd's training time buys (a KD update costs more)
  seqkd                  the same layers, cross-entropy on the teacher's beam outputs of the training set
  gradual                the chain teacher → gradual_via layers → k, each half the updates (kd's total)
  teacher_longer         the teacher trained on for the students' updates at their schedule (annealing)
  seqkd                  (translation only)
  scratch_equal_compute  k layers from random initialisation, the teacher's updates plus the student's
    (classification: truncated_equal_compute, the pretrained model's first k layers, fine-tuned)

The sweep (seed = the first student seed, valid only) trains kd at every (α, T) of the grid; with
ce_same_init it is the grid's α = 0 point. The pick is the best α > 0 point on valid (the KL arm must
have a KL); valid's verdict on α = 0 is written beside it. `--set kd_alpha=… --set kd_temperature=…`
skips the sweep (a later teacher reuses the first one's pick). Planning imports no torch and no fairseq.
"""
import json
import os
import sys
from typing import Dict, List, Optional

from selfteach_pipeline.files import atomic_write_text
from selfteach_pipeline.kl_families import COMMON, FAMILIES
from selfteach_pipeline.plan import Plan, PlanError


def defaults(family: str) -> Dict[str, object]:
    if family not in FAMILIES:
        raise PlanError(f"--family {family}: expected one of {', '.join(FAMILIES)}")
    return {**COMMON, **FAMILIES[family].DEFAULTS}


def grid(text: str, key: str) -> List[float]:
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise PlanError(f"{key}={text}: expected comma-separated numbers") from None
    if not values:
        raise PlanError(f"{key}: empty")
    return values


def check(s: Dict[str, object]) -> None:
    if not 1 <= s["student_depth"] < s["teacher_layers"]:
        raise PlanError(f"student_depth={s['student_depth']}: must be 1 to teacher_layers-1 ({s['teacher_layers'] - 1})")
    if not s["student_depth"] < s["gradual_via"] < s["teacher_layers"]:
        raise PlanError(f"gradual_via={s['gradual_via']}: must lie between student_depth and teacher_layers")
    if not s["student_seeds"]:
        raise PlanError("student_seeds: empty")
    if bool(s["kd_alpha"]) != bool(s["kd_temperature"]):
        raise PlanError("kd_alpha and kd_temperature are set together (or both left to the sweep)")
    for a in grid(s["sweep_alpha"], "sweep_alpha") + ([float(s["kd_alpha"])] if s["kd_alpha"] else []):
        if not 0 < a <= 1:
            raise PlanError(f"α={a}: the KD arm's α must be in (0, 1] (α = 0 is ce_same_init)")


class StudyPlan:
    """Builds the run's plan from its settings and what has finished in OUT (the sweep's scores)."""

    def __init__(self, out: str, settings: Dict[str, object], data: Optional[str] = None, debs: Optional[str] = None,
                 cores: int = 2, family: str = "translation"):
        self.out, self.s, self.cores, self.debs = out, settings, cores, debs
        self.prepare_data = data is None
        if family == "translation":
            self.data = data or os.path.join(out, "data", "prep")
            self.bin = os.path.join(self.data, "bin")
        else:  # a binarised GLUE-layout folder
            self.data = self.bin = data or os.path.join(out, "data", "bin")
        self.family = FAMILIES[family](self)

    # --- commands ------------------------------------------------------------------------------
    def train(self, plan, name, layers, updates, lr, warmup, seed, *extra, after=(), data=None):
        # one thread per training: at these sizes a second thread bought 6 % (1.61 against 1.51 updates/s)
        # and OpenMP threads stall beside other work; the other cores train other arms meanwhile
        argv = ["fairseq-train", data or self.bin, *self.family.train_options(layers, updates, lr, warmup, seed),
                "--save-dir", self.model_dir(name), *extra]
        return plan.add(f"train_{name}", argv, after)

    def model_dir(self, name):
        return os.path.join(self.out, "models", name)

    def checkpoint(self, name):
        return os.path.join(self.model_dir(name), "checkpoint_best.pt")

    def exported(self, name):
        return os.path.join(self.out, "models", f"{name}.pt")

    def evaluate(self, plan, name, method, started_from, *, valid=False):
        """export to a plain fairseq checkpoint, then the family's scoring: results/NAME.json (+ NAME.valid.json)."""
        plan.add(f"export_{name}", ["selfteach-export-student", "--checkpoint", self.checkpoint(name),
                 "--out", self.exported(name), "--started-from", started_from], [f"train_{name}"])
        self.family.evaluate(plan, name, method, valid)

    def result(self, row):
        return os.path.join(self.out, "results", f"{row}.json")

    def read(self, row) -> Optional[dict]:
        try:
            with open(self.result(row), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def score(self, row) -> Optional[float]:
        found = self.read(row)
        return None if found is None else found[self.family.score_key]

    # --- the plan --------------------------------------------------------------------------------
    def build(self) -> Plan:
        s, f, plan = self.s, self.family, Plan()
        k, L, U, B = s["student_depth"], s["teacher_layers"], s["student_updates"], s["teacher_updates"]
        seeds, s1, layers = s["student_seeds"], s["student_seeds"][0], f.layers_flag.strip("-").replace("-", " ")
        data_stage = f.data_stages(plan) if self.prepare_data or f.name == "classification" else None
        teacher = self.checkpoint("teacher")
        self.train(plan, "teacher", L, B, s["teacher_lr"], s["teacher_warmup"], s["teacher_seed"],
                   *f.from_pretrained(), *f.ce(), after=[data_stage])
        self.evaluate(plan, "teacher", "teacher", f.scratch_from, valid=True)
        plan.choose(f"{f.name}: teacher {L} {layers}, {B} updates, lr {s['teacher_lr']} decayed linearly to 0 "
                    f"(seed {s['teacher_seed']}); students {k} {layers}, {U} updates at lr {s['student_lr']} "
                    f"decayed to 0, seeds {','.join(map(str, seeds))}")

        def student(name, seed, updates, teacher_path, *loss, depth=k, after="train_teacher", data=None):
            """k layers initialised from teacher_path's first k (the plugin's student tasks), then loss."""
            self.train(plan, name, depth, updates, s["student_lr"], s["student_warmup"], seed, *f.students_task(),
                       "--teacher-path", teacher_path, *loss, after=[after], data=data)
        first = f"teacher, {layers} 1-{k}"
        for seed in seeds:  # the arms that need no KD options: planned first, run beside the teacher
            name = f"{f.scratch_arm}_s{seed}"
            self.train(plan, name, k, B + U, s["teacher_lr"], s["teacher_warmup"], seed, *f.from_pretrained(),
                       *f.ce(), after=[data_stage])
            self.evaluate(plan, name, f.scratch_arm, f.scratch_from, valid=True)
        for seed in seeds:
            self.train(plan, f"teacher_longer_s{seed}", L, U, s["student_lr"], s["student_warmup"], seed,
                       *f.continued(teacher), *f.ce(), after=["train_teacher"])
            self.evaluate(plan, f"teacher_longer_s{seed}", "teacher_longer", "teacher")
            student(f"ce_same_init_s{seed}", seed, U, teacher, *f.ce())
            self.evaluate(plan, f"ce_same_init_s{seed}", "ce_same_init", first, valid=seed == s1)
        # the sweep (the first seed's kd at every grid point, on valid) or, once picked, kd for every seed
        alphas, temps = self.kd_choice(plan)
        points = [(a, t) for a in alphas for t in temps]
        for seed in ([s1] if len(points) > 1 else seeds):
            for a, t in points:
                student(kd_name(a, t, seed), seed, U, teacher, *f.kd(a, t))
                self.evaluate(plan, kd_name(a, t, seed), "kd", first, valid=seed == s1)
        if len(points) > 1:
            return plan  # the other arms wait for the sweep's pick
        kd = f.kd(alphas[0], temps[0])
        long_updates = self.long_updates(plan, kd)
        seqkd_bin = f.seqkd_data(plan) if f.has_seqkd else None
        via = s["gradual_via"]
        for seed in seeds:
            if seqkd_bin:  # cross-entropy on the teacher's beam outputs, from the same layers
                student(f"seqkd_s{seed}", seed, U, teacher, *f.ce(), data=seqkd_bin, after="seqkd_binarise")
                self.evaluate(plan, f"seqkd_s{seed}", "seqkd", first)
            student(f"gradual_via{via}_s{seed}", seed, U // 2, teacher, *kd, depth=via)
            student(f"gradual_s{seed}", seed, U - U // 2, self.checkpoint(f"gradual_via{via}_s{seed}"), *kd,
                    after=f"train_gradual_via{via}_s{seed}")
            self.evaluate(plan, f"gradual_s{seed}", "gradual", f"gradual_via{via}_s{seed}, {layers} 1-{k}")
            if long_updates:
                student(f"ce_same_init_long_s{seed}", seed, long_updates, teacher, *f.ce())
                self.evaluate(plan, f"ce_same_init_long_s{seed}", "ce_same_init_long", first)
        return plan

    def kd_choice(self, plan):
        s = self.s
        if s["kd_alpha"]:
            plan.choose(f"kd: α = {s['kd_alpha']}, T = {s['kd_temperature']} (given, no sweep)")
            return [float(s["kd_alpha"])], [float(s["kd_temperature"])]
        alphas, temps = grid(s["sweep_alpha"], "sweep_alpha"), grid(s["sweep_temperature"], "sweep_temperature")
        seed, metric = s["student_seeds"][0], self.family.metric
        scores = {(a, t): self.score(f"{kd_name(a, t, seed)}.valid") for a in alphas for t in temps}
        ce = self.score(f"ce_same_init_s{seed}.valid")
        plan.choose(f"sweep: kd at α ∈ {{{s['sweep_alpha']}}} × T ∈ {{{s['sweep_temperature']}}} and ce_same_init "
                    f"(α = 0), seed {seed}, {s['student_updates']} updates, valid {metric}; the pick is the best α > 0")
        if any(v is None for v in scores.values()) or ce is None:
            return alphas, temps
        (a, t), best = max(scores.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
        sweep = {"metric": f"valid {metric}", "points": [{"kd_alpha": a_, "kd_temperature": t_, "valid_score": v}
                                                         for (a_, t_), v in scores.items()],
                 "ce_same_init_valid_score": ce, "picked": {"kd_alpha": a, "kd_temperature": t},
                 "valid_prefers_alpha_0": ce > best}
        atomic_write_text(os.path.join(self.out, "sweep.json"), json.dumps(sweep, indent=1) + "\n")
        plan.choose(f"sweep picked α = {a}, T = {t} (valid {best}; α = 0: {ce}); {self.out}/sweep.json")
        return [a], [t]

    def long_updates(self, plan, kd) -> int:
        """ce_same_init_long's updates: given, or student_updates × what a kd update costs against a
        cross-entropy one, measured by the update_cost stage (interleaved, so the load hits both alike)."""
        U, s = self.s["student_updates"], self.s
        if s["ce_long_updates"]:
            plan.choose(f"ce_same_init_long: {s['ce_long_updates']} updates (given)")
            return s["ce_long_updates"]
        cost_file, seed, teacher = os.path.join(self.out, "update_cost.json"), s["student_seeds"][0], self.checkpoint("teacher")

        def segment(*loss):  # a student's training as the arms run it; update_cost adds --save-dir
            return ["fairseq-train", self.bin, *self.family.train_options(
                s["student_depth"], U, s["student_lr"], s["student_warmup"], seed),
                *self.family.students_task(), "--teacher-path", teacher, *loss]
        plan.add("update_cost", [sys.executable, "-m", "selfteach_pipeline.update_cost", "--out", cost_file,
                                 "--updates", s["update_cost_updates"], "--interval", max(1, s["update_cost_updates"] // 4),
                                 "--pairs", s["update_cost_pairs"], "--", *segment(*kd), "::", *segment(*self.family.ce())], ["train_teacher"],
                 note="what a kd update costs against a cross-entropy one, measured A B B A")
        if not os.path.exists(cost_file):
            return 0
        with open(cost_file, encoding="utf-8") as f:
            ratio = json.load(f)["ratio"]
        updates = round(U * ratio)
        plan.choose(f"ce_same_init_long: {updates} updates = {U} × {ratio} (a kd update's cost against a "
                    f"cross-entropy one, measured A B B A: {cost_file})")
        return updates


def kd_name(alpha: float, temperature: float, seed: int) -> str:
    return f"kd_a{alpha:g}_t{temperature:g}_s{seed}"
