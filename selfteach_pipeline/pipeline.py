"""A pipeline's stages, written once for every family: data → teacher → baselines (the teacher cut to k
layers; k fresh layers at the students' budget and at equal compute, the teacher's updates plus a
student's; the teacher's first k layers trained with cross-entropy only) → offline students and the gradual
chain → online exits, online-gradual walks (fresh, or of the trained teacher) → [seq-KD] → [anydepth:
one model, every exit] → export → scoring → the report. What differs between families is the family
adapter's (translation_family.py, classification_family.py): the data, fairseq-train's options, what a
fresh model is (random initialisation; the pretrained model's first layers), how a model is scored.

The plan grows as stages finish: a teacher trained with patience gives the online and equal-compute rows
its updates, and --sweep's points give every student and online model the pick, only once they are done;
`build()` reads OUT and is called again by the runner after every round.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from selfteach_pipeline.plan import Plan, PlanError
from selfteach_pipeline.runner import is_done
from selfteach_pipeline.settings_table import LR_KEY, option_words, split_budget, sweep_grid, sweep_pick

# joins rather than work: made anew on every run (their markers removed first), so that a training
# redone later (its marker removed) is waited for again, and the report reads every row there is
REDONE_EACH_RUN = ("trained", "report")
# the rows decoded on the valid set too: the depth pick's candidates and the teacher (not the baselines)
VALID_METHODS = ("teacher", "offline", "online", "gradual", "online-gradual", "seqkd", "anydepth")


@dataclass
class RunOptions:
    """What the user chose for this run beside the settings (the command line's options)."""
    seeds: Tuple[int, ...]
    sweep_grid: Optional[str] = None  # --sweep: the grid tried on valid; None: no sweep
    seqkd: bool = False
    teacher_cache: bool = False
    anydepth: bool = False
    quality_floor: float = 0.97
    cores: int = 1
    said: List[str] = field(default_factory=list)  # choices made before planning (the device), said first


class Pipeline:
    redone_each_run = REDONE_EACH_RUN  # a recorded study's subclass adds its own joins (its compare.py)

    def __init__(self, out: str, settings: Dict[str, object], family, options: RunOptions):
        self.out, self.s, self.o, self.f = out, settings, options, family
        family.pipeline = self
        self.L, self.stack = family.teacher_layers(), family.stack
        self.depths, self.schedule = settings["student_depths"], settings["gradual_schedule"]
        # lanes: each stage gets its share of the cores (on 2 CPU cores two 1-thread trainings get
        # through more updates than one 2-thread training)
        self.threads = max(1, options.cores // max(1, settings["parallel_jobs"]))

    # --- paths -------------------------------------------------------------------------------------
    def path(self, *parts) -> str:
        return os.path.join(self.out, *parts)

    def checkpoint(self, name: str) -> str:
        return self.path("models", name, "checkpoint_best.pt")

    def exported(self, name: str) -> str:
        return self.path("models", f"{name}.pt")

    # --- stages ------------------------------------------------------------------------------------
    def unless_finished(self, plan: Plan, name: str, argv: List[object], finished: bool, said: str) -> List[object]:
        """A stage whose product was whole before its marker was written (a kill in between) is not run
        again: a finished training would take one more update, a cache refuses to overwrite itself."""
        if finished and not is_done(self.out, name):
            plan.choose(f"{name}: {said}; not run again")
            return ["true"]
        return argv

    def train(self, plan: Plan, name: str, updates: int, layers: int, loss: Sequence[object], seed: int, *,
              student: bool, init: Optional[str] = None, teacher: Optional[str] = None,
              stage_updates: Optional[int] = None, extra: Sequence[object] = (), after: Sequence[str] = (),
              data: Optional[str] = None, lr: Optional[str] = None) -> str:
        """fairseq-train into models/NAME: the student's or the teacher's schedule (one of its own over
        stage_updates: an online-gradual stage; a student's rate LR, else the sweep's pick or the table's),
        started from INIT (a checkpoint; None: the family's fresh start), distilled from the frozen TEACHER
        where given."""
        f, log = self.f, self.path("logs", f"{name}.train.log")
        argv = ["fairseq-train", data or f.bin, "--max-update", updates, *f.train_options(),
                *f.schedule(student, stage_updates, lr or self.student_lr), f.layers_flag, layers, *loss, "--seed", seed,
                *f.start(init, teacher), *extra, "--save-dir", self.path("models", name)]
        done = os.path.exists(self.path("models", name, "checkpoint_last.pt")) and "done training" in last_line(log)
        argv = self.unless_finished(plan, name, argv, done, f"training had finished ({log})")
        self.trainings.append(name)
        return plan.add(name, argv, [self.f.data_stage, *after], threads=self.threads, log=log)

    def export(self, plan: Plan, name: str, checkpoint: str, started_from: str, *options, after: Sequence[str]) -> str:
        return plan.add(f"export_{name}", ["selfteach-export-student", "--checkpoint", checkpoint, "--out",
                        self.exported(name), *options, "--started-from", started_from], after)

    def cache(self, plan: Plan, name: str, checkpoint: str, after: str) -> Tuple[List[object], Optional[str]]:
        """--teacher-cache: the stage cache_NAME runs the teacher over the training split once; its
        students read it (the options, the stage) instead of running the teacher."""
        if not self.o.teacher_cache:
            return [], None
        folder = self.path("caches", name)
        # the students' own options (a schedule that needs its total, as polynomial_decay does, included)
        argv = ["selfteach-teacher-cache", self.f.bin, *self.f.train_options(), *self.f.schedule(True),
                *self.f.kd_criterion(), *self.f.start(None, checkpoint), "--cache-out", folder]
        argv = self.unless_finished(plan, f"cache_{name}", argv, os.path.exists(os.path.join(folder, "meta.json")),
                                    f"the cache {folder} was built")
        if f"cache_{name}" not in plan.names():
            plan.add(f"cache_{name}", argv, [self.f.data_stage, after], threads=self.threads)
        return ["--teacher-cache", folder], f"cache_{name}"

    def evaluate(self, plan: Plan, model: Optional[str], name: str, method: str, seed: Optional[int], **extra) -> None:
        """The row NAME (+ _sSEED) of models/MODEL.pt (exported) or of a training checkpoint (anydepth):
        the family's decoding and scoring into results/ROW.json, once every training is done."""
        row = f"{name}_s{seed}" if seed is not None else name
        after = ["trained"] + ([f"export_{model}"] if model else [])
        self.rows.extend(self.f.evaluate(plan, row, model, name, method, method in VALID_METHODS, after, **extra))

    # --- the plan ----------------------------------------------------------------------------------
    def begin(self) -> Tuple[Plan, bool]:
        """A new plan with the data stages, and whether the budgets are known (counted from the prepared
        data, they are not until it is there: the rest is planned then). Every build starts here, the
        recorded studies' (docs/results/*/run.py) too."""
        plan = Plan(choices=list(self.o.said))
        self.rows: List[str] = []  # the scoring stages, which the report waits for
        self.trainings: List[str] = []
        # a row whose model is another's (the same training): {model not trained: the model that is}
        self.stands_for: Dict[str, str] = {}
        self.student_lr: Optional[str] = None  # the sweep's pick of the students' rate (None: the table's)
        self.baseline_lr: Optional[str] = None  # and of the same-budget and equal-compute baselines' rate
        self.f.data_stage = self.f.data_stages(plan)
        return plan, self.f.budgets(plan)

    def build(self) -> Plan:
        plan, known = self.begin()
        if not known:
            return plan
        s, f, o, L = self.s, self.f, self.o, self.L
        seeds, s1, layers = o.seeds, o.seeds[0], f.layers_word
        patience = s["teacher_patience"]
        if o.teacher_cache:
            plan.choose(f"--teacher-cache: the offline, gradual and sweep students read their teacher's {f.cached} "
                        "from OUT/caches (one pass of each teacher over train); validation still runs the teacher")
        teacher = self.teacher(plan)
        teacher_cache, teacher_cache_stage = self.cache(plan, "teacher", teacher, "teacher")
        for k in self.depths:  # baseline: the teacher cut to k layers, no training
            self.export(plan, f"pruned_{self.stack}{k}", teacher, f"teacher_{self.stack}{L} cut to {k} {layers}", f.layers_flag, k,
                        "--no-training", after=["teacher"])
        lr_swept = o.sweep_grid is not None and LR_KEY in dict(sweep_grid(o.sweep_grid)[0][1])
        plan.choose(f"seeds {','.join(map(str, seeds))} (the teacher is trained once, with seed {s1}); students get "
                    f"{f.student_updates()} updates at lr {'chosen by the sweep' if lr_swept else s['student_lr']}; the teacher "
                    + (f"until its valid loss stops improving for {patience} epochs (at most {f.teacher_updates()})"
                       if patience is not None else f"{f.teacher_updates()} updates"))
        if not lr_swept:
            self.same_budget_rows(plan)
        budget = self.teacher_budget(plan)
        kd = self.kd_options(plan, teacher_cache, teacher_cache_stage)
        if lr_swept and kd is not None:  # their rate is the students': known once the sweep has picked
            self.same_budget_rows(plan)
        if budget is not None and kd is not None:
            self.teacher_budget_rows(plan, budget, kd)
        if kd is not None:
            for seed in seeds:
                self.students(plan, seed, kd, teacher_cache, teacher_cache_stage)
        if budget is not None and kd is not None:  # every model planned: their rows and the report
            self.evaluations(plan)
        return plan

    def teacher(self, plan: Plan) -> str:
        """The teacher's training (the first seed; with patience where the table has it) and its export."""
        patience, L = self.s["teacher_patience"], self.L
        self.train(plan, "teacher", self.f.teacher_updates(), L, self.f.ce_criterion(), self.o.seeds[0], student=False,
                   extra=["--patience", patience] if patience is not None else [])
        self.export(plan, f"teacher_{self.stack}{L}", self.checkpoint("teacher"), self.f.fresh(L), after=["teacher"])
        return self.checkpoint("teacher")

    def same_budget_rows(self, plan: Plan) -> None:
        for seed in self.o.seeds:
            for k in self.depths:  # k fresh layers, cross-entropy, the students' budget and rate
                name = f"{self.f.baseline}_same_budget_{self.stack}{k}_s{seed}"
                self.train(plan, name, self.f.student_updates(), k, self.f.ce_criterion(), seed, student=True,
                           lr=self.baseline_lr)
                self.export(plan, name, self.checkpoint(name), self.f.fresh(k), after=[name])

    def teacher_budget(self, plan: Plan) -> Optional[int]:
        """The teacher's updates: teacher_max_update, or, with patience, what its training took (None
        until it finished)."""
        if self.s["teacher_patience"] is None:
            return self.f.teacher_updates()
        if not is_done(self.out, "teacher"):
            return None
        found = re.findall(r"num_updates[ =](\d+)", read(self.path("logs", "teacher.train.log")))
        if not found:
            raise PlanError(f"{self.path('logs', 'teacher.train.log')}: no num_updates line from fairseq-train")
        plan.choose(f"the teacher stopped after {found[-1]} updates: the online models get {found[-1]}, the "
                    f"equal-compute {self.f.baseline} baselines {found[-1]} + {self.f.student_updates()}")
        return int(found[-1])

    def kd_options(self, plan: Plan, cache: List[object], cache_stage: Optional[str]) -> Optional[List[object]]:
        """The distillation options of every student: the table's, or --sweep's pick (None until its
        points are scored: the first offline student once per point, on valid)."""
        s, o, f = self.s, self.o, self.f
        table = {"kd_alpha": s["kd_alpha"], "kd_temperature": s["kd_temperature"]}
        if o.sweep_grid is None:
            return option_words(table.items())
        k, s1, results = self.depths[0], o.seeds[0], []
        grid = sweep_grid(o.sweep_grid)
        plan.choose(f"sweep over {o.sweep_grid} ({len(grid)} points): offline_{self.stack}{k}, seed {s1}, scored by "
                    f"{f.metric} on {f.valid_split}; the pick goes to every student and online model")
        for point, options in grid:
            name = f"sweep_{point}"
            self.train(plan, name, f.student_updates(), k, f.kd_criterion(), s1, student=True,
                       teacher=self.checkpoint("teacher"), extra=[*cache, *option_words({**table, **dict(options)}.items())],
                       after=["teacher", cache_stage], lr=dict(options).get(LR_KEY))
            self.export(plan, name, self.checkpoint(name), f"teacher_{self.stack}{self.L}, {f.layers_word} 1-{k}", after=[name])
            results.append(self.path("sweep", f"{name}.json"))
            f.score_valid(plan, f"valid_{name}", self.exported(name), name, results[-1], after=f"export_{name}")
        baseline_points = self.baseline_sweep(plan, grid)  # {point: its rate}
        if not all(is_done(self.out, f"valid_sweep_{point}") for point in [p for p, _ in grid] + list(baseline_points)):
            return None
        point, options = sweep_pick(o.sweep_grid, f.metric, results, self.path("sweep.md"), self.path("sweep.json"))
        self.student_lr = dict(options).get(LR_KEY)
        words = " ".join(option_words(options)) or "the table's distillation options"
        plan.choose(f"sweep picked {point} (best {f.metric} on validation; {self.path('sweep.md')}): every student "
                    f"and online model gets {words}" + (f"; every student lr {self.student_lr}" if self.student_lr else ""))
        if baseline_points:
            spec = f"{LR_KEY}=" + ",".join(baseline_points.values())
            pick = sweep_pick(spec, f.metric, [self.path("sweep", f"sweep_{p}.json") for p in baseline_points],
                              self.path("sweep_baselines.md"), self.path("sweep_baselines.json"))
            self.baseline_lr = dict(pick[1])[LR_KEY]
            plan.choose(f"the baselines' sweep picked lr {self.baseline_lr} (best {f.metric} on validation; "
                        f"{self.path('sweep_baselines.md')}): the same-budget and equal-compute {f.baseline} baselines' rate")
        return option_words({**table, **dict(options)}.items())

    def baseline_sweep(self, plan: Plan, grid) -> Dict[str, str]:
        """With student_lr in the grid, the same-budget baseline (k fresh layers, cross-entropy, seed 1) is
        trained at each of its rates too and gets its own pick: a baseline tuned as the students are
        (its fresh start may need another rate). Its points' names and their rates, in the grid's order."""
        rates = list(dict.fromkeys(dict(options)[LR_KEY] for _, options in grid if LR_KEY in dict(options)))
        f, k, s1, points = self.f, self.depths[0], self.o.seeds[0], {}
        for lr in rates:
            point = f"{f.baseline}_{LR_KEY}{lr}"
            name = f"sweep_{point}"
            self.train(plan, name, f.student_updates(), k, f.ce_criterion(), s1, student=True, lr=lr)
            self.export(plan, name, self.checkpoint(name), f.fresh(k), after=[name])
            f.score_valid(plan, f"valid_{name}", self.exported(name), name, self.path("sweep", f"{name}.json"),
                          after=f"export_{name}")
            points[point] = lr
        return points

    def teacher_budget_rows(self, plan: Plan, budget: int, kd: List[object]) -> None:
        """What gets the teacher's updates: online exits, fresh online-gradual walks, anydepth, and k
        fresh layers."""
        s, f, o, L = self.s, self.f, self.o, self.L
        distil = [*f.kd_criterion(), *kd]
        exits = ",".join(map(str, self.depths))
        stages = split_budget(budget, len(self.schedule) - 1) if s["online_gradual"] else []
        if stages:
            plan.choose(f"online_gradual: one {L}-layer model through {'→'.join(map(str, self.schedule))}, stages of "
                        f"{' '.join(map(str, stages))} updates (the teacher's budget, {budget}, split evenly)")
        for seed in o.seeds:
            name = f"online_s{seed}"  # one L-layer model, fresh; its top layer teaches the exits
            self.train(plan, name, budget, L, distil, seed, student=False,
                       extra=[*f.exit_options(), "--student-exits", exits])
            for k in self.depths:
                self.export(plan, f"online_{self.stack}{k}_s{seed}", self.checkpoint(name), f"{f.fresh(L)} (exit {k} "
                            f"of one {L}-layer model)", f.layers_flag, k, after=[name])
            prev = None  # the walk: in stage i exit k_{i-1} teaches exit k_i, the layers above k_{i-1} rest
            for i, (up, k) in enumerate(zip(self.schedule, self.schedule[1:])):
                if not stages:
                    break
                name = f"online_gradual_{self.stack}{k}_s{seed}"
                self.train(plan, name, stages[i], L, distil, seed, student=prev is not None, stage_updates=stages[i],
                           init=self.checkpoint(prev) if prev else None, after=[prev],
                           extra=[*f.exit_options(), "--teacher-exit", up, "--student-exits", k])
                started = f.fresh(L) if prev is None else prev.rsplit("_s", 1)[0]
                self.export(plan, name, self.checkpoint(name), f"{started} (exit {k} of one {L}-layer model, taught by "
                            f"exit {up})", f.layers_flag, k, *(["--earlier-training", self.exported(prev)] if prev else []),
                            after=[name] + ([f"export_{prev}"] if prev else []))
                prev = name
        if o.anydepth:
            plan.choose(f"anydepth: one {L}-layer model with every {f.layers_word.split()[0]} exit trained (--student-exits all, "
                        f"the teacher's budget, seed {o.seeds[0]}), decoded at exits 1-{L} with {f.exit_decoder}")
            self.train(plan, f"anydepth_s{o.seeds[0]}", budget, L, distil, o.seeds[0], student=False,
                       extra=["--student-exits", "all"])
        # k fresh layers with what one offline student costs, the teacher included: the baseline a user
        # would train instead of self-teaching (its own schedule over all its updates)
        equal, shallow = budget + f.student_updates(), f.equal_compute_at_student_rate
        lr = (self.baseline_lr or s["student_lr"]) if shallow else s["lr"]
        plan.choose(f"{f.baseline}_equal_compute: k fresh {f.layers_word} ({f.fresh('k')}), "
                    f"{equal} updates (the teacher's {budget} + a student's {f.student_updates()}) at lr {lr}"
                    + (" (the students')" if shallow else ""))
        for seed in o.seeds:
            for k in self.depths:
                name = f"{f.baseline}_equal_compute_{self.stack}{k}_s{seed}"
                self.train(plan, name, equal, k, f.ce_criterion(), seed, student=shallow, stage_updates=equal,
                           lr=self.baseline_lr if shallow else None)
                self.export(plan, name, self.checkpoint(name), f.fresh(k), after=[name])

    def students(self, plan: Plan, seed: int, kd: List[object], cache: List[object], cache_stage: Optional[str]) -> None:
        """Students of frozen teachers: offline (the teacher's first k layers), the gradual chain (each
        stage's student the next one's teacher), seq-KD, and the teacher itself walked through the schedule."""
        s, f, L, distil = self.s, self.f, self.L, [*self.f.kd_criterion(), *kd]
        for k in self.depths:
            name = f"offline_{self.stack}{k}_s{seed}"
            self.train(plan, name, f.student_updates(), k, distil, seed, student=True, teacher=self.checkpoint("teacher"),
                       extra=cache, after=["teacher", cache_stage])
            self.export(plan, name, self.checkpoint(name), f"teacher_{self.stack}{L}, {f.layers_word} 1-{k}", after=[name])
            # the same layers and updates, cross-entropy only: what the KL term adds is offline minus this
            name = f"ce_same_init_{self.stack}{k}_s{seed}"
            self.train(plan, name, f.student_updates(), k, f.ce_criterion(), seed, student=True,
                       teacher=self.checkpoint("teacher"), after=["teacher"])
            self.export(plan, name, self.checkpoint(name), f"teacher_{self.stack}{L}, {f.layers_word} 1-{k}", after=[name])
        prev, prev_name, prev_cache, prev_stage = "teacher", f"teacher_{self.stack}{L}", (cache, cache_stage), "teacher"
        for k in self.schedule[1:]:
            name = f"gradual_{self.stack}{k}_s{seed}"
            if f.gradual_reuses_offline and prev == "teacher" and k in self.depths:
                # the first stage's teacher, initialisation and options are the offline student's: it is that student
                if seed == self.o.seeds[0]:
                    plan.choose(f"gradual_{self.stack}{k}: the offline student offline_{self.stack}{k} is this stage (same "
                                "teacher, initialisation and options); not trained twice")
                self.stands_for[name] = f"offline_{self.stack}{k}_s{seed}"
                name = self.stands_for[name]
            else:
                self.train(plan, name, f.student_updates(), k, distil, seed, student=True,
                           teacher=self.checkpoint(prev), extra=prev_cache[0], after=[prev_stage, prev_cache[1]])
                self.export(plan, name, self.checkpoint(name), f"{prev_name}, {f.layers_word} 1-{k}", after=[name])
            if k != self.schedule[-1]:
                prev_cache = self.cache(plan, name, self.checkpoint(name), name)
            prev, prev_name, prev_stage = name, f"gradual_{self.stack}{k}", name
        if self.o.seqkd:
            data, stage = f.seqkd_data(plan, after=f"export_teacher_{self.stack}{L}")
            for k in self.depths:  # cross-entropy on the teacher's outputs, from the teacher's first k layers
                name = f"seqkd_{self.stack}{k}_s{seed}"
                self.train(plan, name, f.student_updates(), k, f.ce_criterion(), seed, student=True, data=data,
                           teacher=self.checkpoint("teacher"), after=["teacher", stage])
                self.export(plan, name, self.checkpoint(name), f"teacher_{self.stack}{L}, {f.layers_word} 1-{k}", after=[name])
        if s["online_gradual_from_teacher"]:  # the trained teacher walked, each stage the students' budget
            if seed == self.o.seeds[0]:
                plan.choose(f"online_gradual_from_teacher: the trained teacher walked through "
                            f"{'→'.join(map(str, self.schedule))} in one model, stages of {f.student_updates()} "
                            f"updates at lr {self.student_lr or s['student_lr']} (the offline chain's)")
            prev, prev_name = "teacher", f"teacher_{self.stack}{L}"
            for up, k in zip(self.schedule, self.schedule[1:]):
                name = f"online_gradual_from_teacher_{self.stack}{k}_s{seed}"
                self.train(plan, name, f.student_updates(), L, distil, seed, student=True, after=[prev],
                           init=self.checkpoint(prev), extra=[*f.exit_options(), "--teacher-exit", up, "--student-exits", k])
                self.export(plan, name, self.checkpoint(name), f"{prev_name} (exit {k} of one {L}-layer model, taught "
                            f"by exit {up})", f.layers_flag, k, after=[name])
                prev, prev_name = name, f"online_gradual_from_teacher_{self.stack}{k}"

    def evaluations(self, plan: Plan) -> None:
        """Every model's row, then the report. The decodings wait for every training (the stage
        `trained`): their speeds are measured beside other decodings only, and a kill during decoding
        finds every model trained."""
        o, L, f, s = self.o, self.L, self.f, self.s
        self.all_trained(plan)
        self.evaluate(plan, f"teacher_{self.stack}{L}", f"teacher_{self.stack}{L}", "teacher", None)
        for k in self.depths:
            self.evaluate(plan, f"pruned_{self.stack}{k}", f"pruned_{self.stack}{k}", "pruned", None)
        b = f.baseline
        methods = [("offline", "offline"), ("online", "online"), ("ce_same_init", "ce-same-init"),
                   (f"{b}_same_budget", f"{b}-same-budget"), (f"{b}_equal_compute", f"{b}-equal-compute")] + ([("seqkd", "seqkd")] if o.seqkd else [])
        walks = [("gradual", "gradual")] + [(w, "online-gradual") for w in ("online_gradual", "online_gradual_from_teacher")
                                            if s[w]]
        for seed in o.seeds:
            for k in self.depths:
                for name, method in methods:
                    self.evaluate_model(plan, f"{name}_{self.stack}{k}", method, seed)
            for k in self.schedule[1:]:
                for name, method in walks:
                    self.evaluate_model(plan, f"{name}_{self.stack}{k}", method, seed)
        if o.anydepth:  # decoded from its training checkpoint at each exit, no export
            s1 = o.seeds[0]
            for k in range(1, L + 1):
                self.evaluate(plan, None, f"anydepth_exit{k}", "anydepth", s1, exit_layer=k,
                              checkpoint=self.checkpoint(f"anydepth_s{s1}"),
                              started_from=f"random initialisation (exit {k} of one {L}-layer model, every exit trained)")
        self.report(plan, f.title(), *(["--sweep", self.path("sweep.json")] if o.sweep_grid else []))

    def all_trained(self, plan: Plan) -> str:
        """The join every scoring waits for."""
        return plan.add("trained", ["true"], self.trainings, note="every training is done")

    def report(self, plan: Plan, title: str, *options) -> str:
        """results.md and the plot from every row scored, with the depth pick."""
        o = self.o
        plan.choose(f"quality floor {o.quality_floor}: the report names the shallowest student or exit whose "
                    f"{self.f.pick_score()} is at least {o.quality_floor} × the teacher's")
        return plan.add("report", ["selfteach-report", "--results", self.path("results"), "--out", self.path("results.md"),
                        "--plot", self.path(self.f.plot), "--title", title, "--quality-floor", o.quality_floor,
                        *options], self.rows)

    def evaluate_model(self, plan: Plan, name: str, method: str, seed: int) -> None:
        """The row NAME_sSEED, of the model of that name or of the one that stands for it."""
        model = f"{name}_s{seed}"
        self.evaluate(plan, self.stands_for.get(model, model), name, method, seed)


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def last_line(path: str) -> str:
    lines = [line for line in read(path).splitlines() if line.strip()]
    return lines[-1] if lines else ""
