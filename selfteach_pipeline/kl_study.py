"""Does the self-teaching KL pay? One teacher's run of the controlled study, as a plan.

    selfteach-kl-study --out runs/kl-study/teacher1 [--set teacher_seed=1] [--dry-run]
    selfteach-kl-study --report runs/kl-study/teacher1 runs/kl-study/teacher2 --out docs/results/kl-study

A run trains one teacher (converged: its learning rate decays linearly to 0 over `teacher_updates`) and,
for each student seed, the arms below, all at `student_depth` decoder layers; every model is exported to
a plain fairseq checkpoint and decoded by plain fairseq-generate (beam search, no plugin):

  kd                     the teacher's first k layers, offline KD (α, T chosen on valid by the sweep)
  ce_same_init           the same layers, cross-entropy only, the same updates: isolates the KL term
  ce_same_init_long      the same, with as many updates as kd's training time buys (a KD update costs more)
  seqkd                  the same layers, cross-entropy on the teacher's beam outputs of the training set
  gradual                the chain teacher → gradual_via layers → k, each half the updates (kd's total)
  teacher_longer         the teacher trained on for the students' updates at their schedule (annealing)
  scratch_equal_compute  k layers from random initialisation, the teacher's updates plus the student's

The sweep (seed = the first student seed, valid only) trains kd at every (α, T) of the grid; with
ce_same_init it is the grid's α = 0 point. The pick is the best α > 0 point on valid (the KL arm must
have a KL); valid's verdict on α = 0 is written beside it. `--set kd_alpha=… --set kd_temperature=…`
skips the sweep (a later teacher reuses the first one's pick). Planning imports no torch and no fairseq.
"""
import importlib.util
import json
import os
import sys
from typing import Dict, List, Optional

from selfteach_pipeline.plan import Plan, PlanError
from selfteach_pipeline.runner import write_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULTS: Dict[str, object] = {
    # data: the Bible's Es→En verses (preprocess/bible.py), 1 in test_every held out for test
    "src": "es", "tgt": "en", "test_every": 7, "max_words": 20, "valid_every": 12, "bpe_merges": 3000,
    "max_len": 40,
    # model and training (fairseq's transformer_iwslt_de_en, cut down)
    "encoder_layers": 3, "teacher_layers": 4, "embed_dim": 128, "ffn_dim": 512, "heads": 4, "dropout": 0.1,
    "weight_decay": 1e-4, "label_smoothing": 0.1, "max_tokens": 2048,
    "teacher_lr": 3e-3, "teacher_warmup": 150, "teacher_updates": 2400, "teacher_seed": 1,
    "student_depth": 1, "gradual_via": 2, "student_lr": 1e-3, "student_warmup": 50, "student_updates": 400,
    "student_seeds": (1, 2, 3),
    # KD: empty = chosen on valid by the sweep over the grids (comma-separated)
    "kd_alpha": "", "kd_temperature": "", "sweep_alpha": "0.5,0.9", "sweep_temperature": "1,2",
    "ce_long_updates": 0,  # 0 = student_updates × (kd's train seconds ÷ ce_same_init's), seed 1
    "beam": 5, "generate_batch_size": 128,
    "cpu": True,  # fairseq's --cpu on every training and decoding (no: the GPUs a job is given)
}
TRAIN_ARMS = ("kd", "ce_same_init", "ce_same_init_long", "seqkd", "gradual", "teacher_longer",
              "scratch_equal_compute")


def user_dir() -> str:
    spec = importlib.util.find_spec("fairseq_selfteach")  # found, not imported
    return spec.submodule_search_locations[0]


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
                 cores: int = 2):
        self.out, self.s, self.cores, self.debs = out, settings, cores, debs
        self.data = data or os.path.join(out, "data", "prep")
        self.prepare_data = data is None
        self.bin = os.path.join(self.data, "bin")

    # --- commands ------------------------------------------------------------------------------
    def train(self, plan, name, layers, updates, lr, warmup, seed, *extra, after=(), threads=1, data=None):
        s = self.s
        argv = ["fairseq-train", data or self.bin, "--task", "self_distill_translation",
                "--arch", "transformer_iwslt_de_en", "--share-decoder-input-output-embed",
                "--encoder-layers", s["encoder_layers"], "--decoder-layers", layers,
                "--encoder-embed-dim", s["embed_dim"], "--decoder-embed-dim", s["embed_dim"],
                "--encoder-ffn-embed-dim", s["ffn_dim"], "--decoder-ffn-embed-dim", s["ffn_dim"],
                "--encoder-attention-heads", s["heads"], "--decoder-attention-heads", s["heads"],
                "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--clip-norm", "0.0",
                "--lr", lr, "--lr-scheduler", "polynomial_decay", "--total-num-update", updates,
                "--end-learning-rate", "0", "--warmup-updates", warmup, "--max-update", updates,
                "--dropout", s["dropout"], "--weight-decay", s["weight_decay"],
                "--label-smoothing", s["label_smoothing"], "--max-tokens", s["max_tokens"], "--seed", seed,
                "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "100",
                "--required-batch-size-multiple", "1", "--num-workers", "0", *self.device(),
                "--user-dir", user_dir(), "--save-dir", self.model_dir(name), *extra]
        return plan.add(f"train_{name}", argv, after, threads=threads)

    def device(self):
        return ["--cpu"] if self.s["cpu"] else []

    def model_dir(self, name):
        return os.path.join(self.out, "models", name)

    def checkpoint(self, name):
        return os.path.join(self.model_dir(name), "checkpoint_best.pt")

    def exported(self, name):
        return os.path.join(self.out, "models", f"{name}.pt")

    def evaluate(self, plan, name, method, started_from, *, layers=None, valid=False, subset_rows=("test",)):
        """export, plain fairseq-generate on test (and valid), score: results/NAME.json (+ NAME.valid.json)."""
        export = ["selfteach-export-student", "--checkpoint", self.checkpoint(name), "--out", self.exported(name),
                  "--started-from", started_from] + (["--decoder-layers", layers] if layers else [])
        plan.add(f"export_{name}", export, [f"train_{name}"])
        subsets = ["test"] + (["valid"] if valid else [])
        for subset in subsets:
            gen = os.path.join(self.out, "generate", f"{name}.{subset}.txt")
            plan.add(f"decode_{name}_{subset}", ["fairseq-generate", self.bin, "--path", self.exported(name),
                     "--gen-subset", subset, "--beam", self.s["beam"], "--batch-size", self.s["generate_batch_size"],
                     "--remove-bpe", "--max-len-a", "1.5", "--max-len-b", "10", "--required-batch-size-multiple",
                     "1", "--num-workers", "0", *self.device()], [f"export_{name}"], stdout=gen)
            row = name if subset == "test" else f"{name}.valid"
            plan.add(f"score_{row}", ["selfteach-score-translation", "--generate-log", gen,
                     "--tok-ref", os.path.join(self.data, "tok", f"{subset}.{self.s['tgt']}"),
                     "--raw-ref", os.path.join(self.data, "ref", f"{subset}.{self.s['tgt']}"),
                     "--lang", self.s["tgt"], "--checkpoint", self.exported(name), "--name", row,
                     "--method", method, "--out", self.result(row)], [f"decode_{name}_{subset}"])

    def result(self, row):
        return os.path.join(self.out, "results", f"{row}.json")

    def read(self, row) -> Optional[dict]:
        try:
            with open(self.result(row), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    # --- the plan --------------------------------------------------------------------------------
    def build(self) -> Plan:
        s, plan = self.s, Plan()
        k, L, U, B = s["student_depth"], s["teacher_layers"], s["student_updates"], s["teacher_updates"]
        seeds = s["student_seeds"]
        data_stage = None
        if self.prepare_data:
            raw = os.path.join(self.out, "data")
            plan.add("data_raw", [sys.executable, os.path.join(ROOT, "preprocess", "bible.py"), "--out", raw,
                     "--test-every", s["test_every"], "--max-words", s["max_words"]]
                     + (["--debs", self.debs] if self.debs else []))
            data_stage = plan.add("data_prepare", [sys.executable, os.path.join(ROOT, "preprocess", "prepare_translation.py"),
                                  "--raw", os.path.join(raw, "raw"), "--src", s["src"], "--tgt", s["tgt"], "--out", self.data,
                                  "--bpe", "subword_nmt", "--bpe-merges", s["bpe_merges"], "--max-len", s["max_len"],
                                  "--max-train-pairs", "0", "--valid-every", s["valid_every"], "--workers", self.cores],
                                  ["data_raw"], threads=self.cores)
        teacher = self.checkpoint("teacher")
        # one thread per training: at these sizes a second thread bought 6 % (1.61 against 1.51 updates/s)
        # and OpenMP threads stall beside other work; the other cores train the scratch baselines meanwhile
        self.train(plan, "teacher", L, B, s["teacher_lr"], s["teacher_warmup"], s["teacher_seed"],
                   "--criterion", "label_smoothed_cross_entropy", after=[data_stage])
        self.evaluate(plan, "teacher", "teacher", "random initialisation", valid=True)
        plan.choose(f"teacher: {L} decoder layers, {B} updates, lr {s['teacher_lr']} decayed linearly to 0 "
                    f"(seed {s['teacher_seed']}); students: {k} decoder layers, {U} updates at lr {s['student_lr']} "
                    f"decayed to 0, seeds {','.join(map(str, seeds))}")

        def student_train(name, seed, updates, *extra, layers=k, init_from="train_teacher", data=None):
            return self.train(plan, name, layers, updates, s["student_lr"], s["student_warmup"], seed, *extra,
                              after=[init_from], data=data)
        ce = ("--teacher-path", teacher, "--criterion", "label_smoothed_cross_entropy")
        first = f"teacher, decoder layers 1-{k}"
        s1 = seeds[0]
        for seed in seeds:  # the arms that need no KD options: planned first, run beside the teacher
            self.train(plan, f"scratch_equal_compute_s{seed}", k, B + U, s["teacher_lr"], s["teacher_warmup"], seed,
                       "--criterion", "label_smoothed_cross_entropy", after=[data_stage])
            self.evaluate(plan, f"scratch_equal_compute_s{seed}", "scratch_equal_compute", "random initialisation",
                          valid=True)
        for seed in seeds:
            self.train(plan, f"teacher_longer_s{seed}", L, U, s["student_lr"], s["student_warmup"], seed,
                       "--finetune-from-model", teacher, "--criterion", "label_smoothed_cross_entropy",
                       after=["train_teacher"])
            self.evaluate(plan, f"teacher_longer_s{seed}", "teacher_longer", "teacher")
            student_train(f"ce_same_init_s{seed}", seed, U, *ce)
            self.evaluate(plan, f"ce_same_init_s{seed}", "ce_same_init", first, valid=seed == s1)
        # the sweep (seed 1's kd at every grid point, on valid) or, once picked, kd for every seed
        alphas, temps = self.kd_choice(plan)
        points = [(a, t) for a in alphas for t in temps]
        for seed in ([s1] if len(points) > 1 else seeds):
            for a, t in points:
                name = kd_name(a, t, seed)
                student_train(name, seed, U, "--teacher-path", teacher, "--criterion", "self_distill",
                              "--kd-alpha", a, "--kd-temperature", t)
                self.evaluate(plan, name, "kd", first, valid=seed == s1)
        if len(points) > 1:
            return plan  # the other arms wait for the sweep's pick
        a, t = alphas[0], temps[0]
        kd = ("--criterion", "self_distill", "--kd-alpha", a, "--kd-temperature", t)
        long_updates = self.long_updates(plan, kd_name(a, t, s1), f"ce_same_init_s{s1}")
        # sequence-level KD data: the teacher's beam output on the training set, binarised with its dictionary
        seqkd_bin = os.path.join(self.out, "data", "seqkd", "bin")
        self.seqkd_data(plan, seqkd_bin)
        for seed in seeds:
            student_train(f"seqkd_s{seed}", seed, U, *ce, data=seqkd_bin, init_from="seqkd_binarise")
            self.evaluate(plan, f"seqkd_s{seed}", "seqkd", first)
            via = s["gradual_via"]
            student_train(f"gradual_via{via}_s{seed}", seed, U // 2, "--teacher-path", teacher, *kd, layers=via)
            student_train(f"gradual_s{seed}", seed, U - U // 2, "--teacher-path",
                          self.checkpoint(f"gradual_via{via}_s{seed}"), *kd, init_from=f"train_gradual_via{via}_s{seed}")
            self.evaluate(plan, f"gradual_s{seed}", "gradual", f"gradual_via{via}_s{seed}, decoder layers 1-{k}")
            if long_updates:
                student_train(f"ce_same_init_long_s{seed}", seed, long_updates, *ce)
                self.evaluate(plan, f"ce_same_init_long_s{seed}", "ce_same_init_long", first)
        return plan

    def kd_choice(self, plan):
        s = self.s
        if s["kd_alpha"]:
            plan.choose(f"kd: α = {s['kd_alpha']}, T = {s['kd_temperature']} (given, no sweep)")
            return [float(s["kd_alpha"])], [float(s["kd_temperature"])]
        alphas, temps = grid(s["sweep_alpha"], "sweep_alpha"), grid(s["sweep_temperature"], "sweep_temperature")
        seed = s["student_seeds"][0]
        scores = {(a, t): self.read(f"{kd_name(a, t, seed)}.valid") for a in alphas for t in temps}
        ce = self.read(f"ce_same_init_s{seed}.valid")
        plan.choose(f"sweep: kd at α ∈ {{{s['sweep_alpha']}}} × T ∈ {{{s['sweep_temperature']}}} and ce_same_init "
                    f"(α = 0), seed {seed}, {s['student_updates']} updates, valid sacreBLEU; the pick is the best α > 0")
        if any(v is None for v in scores.values()) or ce is None:
            return alphas, temps
        (a, t), best = max(scores.items(), key=lambda kv: (kv[1]["sacrebleu"], -kv[0][0], -kv[0][1]))
        sweep = {"points": [{"kd_alpha": a_, "kd_temperature": t_, "valid_sacrebleu": r["sacrebleu"]}
                            for (a_, t_), r in scores.items()],
                 "ce_same_init_valid_sacrebleu": ce["sacrebleu"], "picked": {"kd_alpha": a, "kd_temperature": t},
                 "valid_prefers_alpha_0": ce["sacrebleu"] > best["sacrebleu"]}
        write_atomic(os.path.join(self.out, "sweep.json"), json.dumps(sweep, indent=1) + "\n")
        plan.choose(f"sweep picked α = {a}, T = {t} (valid {best['sacrebleu']}; α = 0: {ce['sacrebleu']}); "
                    f"{self.out}/sweep.json")
        return [a], [t]

    def long_updates(self, plan, kd_row, ce_row) -> int:
        U = self.s["student_updates"]
        if self.s["ce_long_updates"]:
            plan.choose(f"ce_same_init_long: {self.s['ce_long_updates']} updates (given)")
            return self.s["ce_long_updates"]
        kd, ce = self.read(f"{kd_row}.valid") or self.read(kd_row), self.read(f"{ce_row}.valid") or self.read(ce_row)
        if not (kd and ce and kd.get("train_seconds") and ce.get("train_seconds")):
            return 0
        updates = round(U * kd["train_seconds"] / ce["train_seconds"])
        plan.choose(f"ce_same_init_long: {updates} updates = {U} × kd's {kd['train_seconds']} s ÷ ce_same_init's "
                    f"{ce['train_seconds']} s (seed {self.s['student_seeds'][0]}, the same {U} updates)")
        return updates

    def seqkd_data(self, plan, seqkd_bin):
        s, root = self.s, os.path.join(self.out, "data", "seqkd")
        gen = os.path.join(self.out, "generate", "teacher.train.txt")
        plan.add("decode_teacher_train", ["fairseq-generate", self.bin, "--path", self.exported("teacher"),
                 "--gen-subset", "train", "--beam", s["beam"], "--batch-size", s["generate_batch_size"],
                 "--max-len-a", "1.5", "--max-len-b", "10", "--required-batch-size-multiple", "1",
                 "--num-workers", "0", *self.device()], ["export_teacher"], stdout=gen, threads=self.cores)
        plan.add("seqkd_corpus", ["selfteach-seqkd-corpus", "--generate-log", gen, "--source",
                 os.path.join(self.data, "bpe", f"train.{s['src']}"), "--out-prefix", os.path.join(root, "train"),
                 "--src", s["src"], "--tgt", s["tgt"]], ["decode_teacher_train"])
        bpe = os.path.join(self.data, "bpe")
        plan.add("seqkd_binarise", ["fairseq-preprocess", "--source-lang", s["src"], "--target-lang", s["tgt"],
                 "--trainpref", os.path.join(root, "train"), "--validpref", os.path.join(bpe, "valid"),
                 "--srcdict", os.path.join(self.bin, f"dict.{s['src']}.txt"),
                 "--tgtdict", os.path.join(self.bin, f"dict.{s['tgt']}.txt"),
                 "--destdir", seqkd_bin, "--workers", "1"], ["seqkd_corpus"])


def kd_name(alpha: float, temperature: float, seed: int) -> str:
    return f"kd_a{alpha:g}_t{temperature:g}_s{seed}"
