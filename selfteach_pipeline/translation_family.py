"""What the translation pipeline adds to selfteach_pipeline/pipeline.py: its settings table
(scripts/translation_settings.tsv), the data (IWSLT14 or the Bible's verses, prepared by preprocess/;
or a folder the user binarised with fairseq-preprocess), fairseq-train's options (transformer_iwslt_de_en
with the students' depth in --decoder-layers) and the scoring: plain fairseq-generate on the exported
model (no plugin; the anydepth exits alone need it, for --exit-layer), then sacreBLEU and tokenised BLEU.
"""
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from selfteach_pipeline.plan import Plan, PlanError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "scripts", "translation_settings.tsv")
USER_DIR = os.path.join(ROOT, "fairseq_selfteach")

# the type of each row of the table ("-" in a cell: not used)
KINDS: Dict[str, type] = {
    **dict.fromkeys(("corpus", "src", "tgt", "bpe", "arch", "sweep_grid"), str),
    **dict.fromkeys(("test_every", "max_words", "bpe_merges", "max_len", "max_train_pairs", "embed_dim", "ffn_dim",
                     "heads", "encoder_layers", "teacher_decoder_layers", "warmup_updates", "max_tokens",
                     "teacher_max_update", "teacher_patience", "student_max_update", "student_warmup_updates",
                     "beam", "generate_batch_size", "parallel_jobs"), int),
    **dict.fromkeys(("quality_floor", "lr", "dropout", "weight_decay", "label_smoothing", "student_lr", "kd_alpha",
                     "kd_temperature"), float),
    **dict.fromkeys(("student_depths", "gradual_schedule", "seeds"), tuple),
    **dict.fromkeys(("online_gradual", "online_gradual_from_teacher", "anydepth"), bool),
}


class References:
    """The text sacreBLEU and tokenised BLEU compare with, per split: raw and tokenised, lower-cased."""

    def __init__(self, raw: Dict[str, str], tok: Dict[str, str]):
        self.raw, self.tok = raw, tok


class TranslationFamily:
    metric, metric_name, plot = "sacrebleu", "sacreBLEU", "bleu_vs_params.png"
    layers_flag, layers_word, stack = "--decoder-layers", "decoder layers", "dec"
    exit_decoder = "fairseq-generate --exit-layer K"
    baseline = "scratch"  # the baselines are k layers trained from scratch
    cached, valid_split = "top 8 logits per target token", "valid"
    gradual_reuses_offline = False
    equal_compute_at_student_rate = False  # its layers are random: the teacher's schedule

    def __init__(self, out: str, setting: str, settings: Dict[str, object], device, *, data_bin: Optional[str] = None,
                 refs: Optional[References] = None, archive: str = "", url: str = "", debs: str = "", cores: int = 1):
        self.out, self.setting, self.s, self.device, self.cores = out, setting, settings, device, cores
        self.archive, self.url, self.debs = archive, url, debs
        self.pipeline = None  # set by the Pipeline this family serves
        self.data_stage: Optional[str] = None
        self.data_bin = data_bin
        self.bin = data_bin or self.prep("bin")
        self.refs = refs or References({split: self.prep("ref", f"{split}.{settings['tgt']}") for split in ("test", "valid")},
                                       {split: self.prep("tok", f"{split}.{settings['tgt']}") for split in ("test", "valid")})

    def prep(self, *parts) -> str:
        return os.path.join(self.out, "data", "prep", *parts)

    def data_folder(self) -> str:  # what --only-data prepares
        return self.prep()

    # --- the budget --------------------------------------------------------------------------------
    def teacher_layers(self) -> int:
        return self.s["teacher_decoder_layers"]

    def teacher_updates(self) -> int:
        return self.s["teacher_max_update"]

    def student_updates(self) -> int:
        return self.s["student_max_update"]

    def budgets(self, plan: Plan) -> bool:
        return True  # the table's, known before any data

    def fresh(self, layers: int) -> str:
        return "random initialisation"

    def pick_score(self) -> str:
        return f"valid {self.metric_name}"

    def title(self) -> str:
        s = self.s
        return f"{self.setting}: {s['src']}→{s['tgt']} ({s['corpus'] if not self.data_bin else os.path.basename(self.data_bin)})"

    # --- data --------------------------------------------------------------------------------------
    def data_stages(self, plan: Plan) -> Optional[str]:
        """OUT/data/raw (the corpus's own download or packages), then OUT/data/prep (tokenised, BPE'd,
        binarised); None with --data-bin."""
        if self.data_bin:
            return None
        s, data = self.s, os.path.join(self.out, "data")
        if s["corpus"] == "bible":
            raw = [sys.executable, os.path.join(ROOT, "preprocess", "bible.py"), "--out", data, "--test-every",
                   s["test_every"], "--max-words", s["max_words"], *(["--debs", self.debs] if self.debs else [])]
        else:
            raw = [sys.executable, os.path.join(ROOT, "preprocess", "iwslt14.py"), "--src", s["src"], "--out", data,
                   *(["--archive", self.archive] if self.archive else []), *(["--url", self.url] if self.url else [])]
        plan.add("raw", raw)
        return plan.add("prepare", [sys.executable, os.path.join(ROOT, "preprocess", "prepare_translation.py"),
                        "--raw", os.path.join(data, "raw"), "--src", s["src"], "--tgt", s["tgt"], "--out", self.prep(),
                        "--bpe", s["bpe"], "--bpe-merges", s["bpe_merges"], "--max-len", s["max_len"],
                        "--max-train-pairs", s["max_train_pairs"], "--workers", self.cores], ["raw"], threads=self.cores)

    # --- training ------------------------------------------------------------------------------------
    def train_options(self) -> List[object]:
        """Every fairseq-train's options but the schedule, depth, loss and seed. --task
        self_distill_translation for every training, the teacher's too: without a teacher it is fairseq's
        translation task, but a training killed and run again ends as the uninterrupted one
        (fairseq_selfteach/core/exact_resume.py)."""
        s, dim, ffn, heads = self.s, self.s["embed_dim"], self.s["ffn_dim"], self.s["heads"]
        return ["--task", "self_distill_translation", "--arch", s["arch"], "--share-decoder-input-output-embed",
                "--encoder-layers", s["encoder_layers"], "--encoder-embed-dim", dim, "--decoder-embed-dim", dim,
                "--encoder-ffn-embed-dim", ffn, "--decoder-ffn-embed-dim", ffn, "--encoder-attention-heads", heads,
                "--decoder-attention-heads", heads, "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
                "--clip-norm", "0.0", "--lr-scheduler", "inverse_sqrt", "--dropout", s["dropout"],
                "--weight-decay", s["weight_decay"], "--label-smoothing", s["label_smoothing"],
                "--max-tokens", s["max_tokens"], "--no-epoch-checkpoints", "--log-format", "simple",
                "--log-interval", "50", "--required-batch-size-multiple", "1", "--num-workers", "0",
                "--user-dir", USER_DIR, *self.device.train_options()]

    def schedule(self, student: bool, stage_updates: Optional[int] = None, lr: Optional[str] = None) -> List[object]:
        """Students (and the same-budget baseline) start from trained layers: their own learning rate (LR:
        the sweep's, else the table's) and warm-up, as re-warming to the teacher's peak rate would undo what
        they start from. (inverse_sqrt needs no total: an online-gradual stage's stage_updates change nothing.)"""
        s = self.s
        if student:
            return ["--lr", lr or s["student_lr"], "--warmup-updates", s["student_warmup_updates"]]
        return ["--lr", s["lr"], "--warmup-updates", s["warmup_updates"]]

    def start(self, init: Optional[str], teacher: Optional[str]) -> List[object]:
        """Random initialisation unless INIT; a student of a frozen TEACHER starts from its first layers."""
        return (["--finetune-from-model", init] if init else []) + (["--teacher-path", teacher] if teacher else [])

    def exit_options(self) -> List[object]:
        return []

    def ce_criterion(self) -> List[object]:
        return ["--criterion", "label_smoothed_cross_entropy"]

    def kd_criterion(self) -> List[object]:
        return ["--criterion", "self_distill"]

    # --- decoding and scoring ------------------------------------------------------------------------
    def decode_options(self) -> List[object]:
        # hypotheses longer than 1.5 × source + 10 tokens are cut (training pairs have a length ratio ≤ 1.5):
        # fairseq's default of 200 extra tokens only lets a weak model's repetitions run on
        s = self.s
        return ["--beam", s["beam"], "--batch-size", s["generate_batch_size"], "--max-len-a", "1.5", "--max-len-b", "10",
                "--required-batch-size-multiple", "1", "--num-workers", "0", *self.device.decode_options()]

    def decode(self, plan: Plan, name: str, model: str, subset: str, output: str, after: Sequence[str], plugin=()) -> str:
        return plan.add(name, ["fairseq-generate", self.bin, "--path", model, *plugin, *(["--gen-subset", subset]
                        if subset != "test" else []), "--remove-bpe", *self.decode_options()], after, stdout=output,
                        threads=self.pipeline.threads)

    def evaluate(self, plan: Plan, row: str, model: Optional[str], name: str, method: str, valid: bool, after: Sequence[str],
                 exit_layer: Optional[int] = None, checkpoint: str = "", started_from: str = "") -> List[str]:
        """Plain fairseq-generate of models/MODEL.pt on test (and valid), then results/ROW.json; an
        anydepth exit is decoded from its training checkpoint with the plugin (--exit-layer K)."""
        p = self.pipeline
        path = checkpoint or p.exported(model)
        plugin = ["--user-dir", USER_DIR, "--task", "self_distill_translation", "--exit-layer", exit_layer] if exit_layer else []
        gen = p.path("generate", f"{row}.txt")
        decodes = [self.decode(plan, f"decode_{row}", path, "test", gen, after, plugin)]
        score = ["selfteach-score-translation", "--generate-log", gen, "--checkpoint", path, "--name", name,
                 "--method", method, "--out", p.path("results", f"{row}.json"), "--lang", self.s["tgt"],
                 "--tok-ref", self.refs.tok["test"], "--raw-ref", self.refs.raw["test"]]
        if valid:
            decodes.append(self.decode(plan, f"decode_{row}_valid", path, "valid", gen[:-4] + ".valid.txt", after, plugin))
            score += ["--valid-generate-log", gen[:-4] + ".valid.txt", "--valid-tok-ref", self.refs.tok["valid"],
                      "--valid-raw-ref", self.refs.raw["valid"]]
        if exit_layer:
            score += [self.layers_flag, exit_layer, "--started-from", started_from]
        return [plan.add(f"eval_{row}", score, decodes)]

    def score_valid(self, plan: Plan, name: str, model: str, row: str, out_json: str, after: str) -> str:
        """A sweep point: its model decoded on valid and scored against the valid references (never test)."""
        gen = self.pipeline.path("generate", f"{row}.valid.txt")
        decode = self.decode(plan, f"decode_{row}_valid", model, "valid", gen, [after])
        return plan.add(name, ["selfteach-score-translation", "--generate-log", gen, "--checkpoint", model, "--name",
                        row, "--method", "offline", "--out", out_json, "--lang", self.s["tgt"],
                        "--tok-ref", self.refs.tok["valid"], "--raw-ref", self.refs.raw["valid"]], [decode])

    def seqkd_data(self, plan: Plan, after: str) -> Tuple[str, str]:
        """Sequence-level KD's data: the teacher's beam outputs on the training set become the targets,
        binarised with the teacher's dictionaries beside the same valid and test splits: (its bin, stage)."""
        p, s = self.pipeline, self.s
        src, tgt, root = s["src"], s["tgt"], p.path("data", "seqkd")
        if "seqkd_data" in plan.names():
            return os.path.join(root, "bin"), "seqkd_data"
        source = os.path.join(os.path.dirname(self.bin), "bpe", f"train.{src}")
        if self.data_bin and not os.path.exists(source):
            raise PlanError(f"--seqkd with --data-bin needs the BPE'd training source beside it: no {source}")
        gen = p.path("generate", "teacher_train.txt")
        plan.add("decode_teacher_train", ["fairseq-generate", self.bin, "--path", p.exported(f"teacher_dec{p.L}"),
                 "--gen-subset", "train", *self.decode_options()], [after], stdout=gen, threads=p.threads)
        plan.add("seqkd_corpus", ["selfteach-seqkd-corpus", "--generate-log", gen, "--source", source, "--out-prefix",
                 os.path.join(root, "train"), "--src", src, "--tgt", tgt], ["decode_teacher_train"])
        plan.add("seqkd_binarise", ["fairseq-preprocess", "--source-lang", src, "--target-lang", tgt, "--trainpref",
                 os.path.join(root, "train"), "--srcdict", os.path.join(self.bin, f"dict.{src}.txt"), "--tgtdict",
                 os.path.join(self.bin, f"dict.{tgt}.txt"), "--destdir", os.path.join(root, "bin"),
                 "--workers", p.threads], ["seqkd_corpus"], threads=p.threads)
        splits = [os.path.join(self.bin, f"{split}.{src}-{tgt}.{lang}.{ext}") for split in ("valid", "test")
                  for lang in (src, tgt) for ext in ("bin", "idx")]
        return os.path.join(root, "bin"), plan.add("seqkd_data", ["cp", *splits, os.path.join(root, "bin")],
                                                   ["seqkd_binarise"])


def data_bin_references(data_bin: str, tgt: str, given: Dict[str, str]) -> References:
    """--data-bin's references: --test-raw & co. where given, else the raw (ref/) and tokenised (tok/)
    text beside or inside the folder, as preprocess/prepare_translation.py lays them out."""
    found: Dict[str, Dict[str, str]] = {"raw": {}, "tok": {}}
    for kind, folder in (("raw", "ref"), ("tok", "tok")):
        for split in ("test", "valid"):
            option = f"--{split}-{kind}"
            candidates = [given[option]] if given.get(option) else [
                os.path.join(data_bin, folder, f"{split}.{tgt}"),
                os.path.join(os.path.dirname(os.path.abspath(data_bin)), folder, f"{split}.{tgt}")]
            path = next((c for c in candidates if os.path.isfile(c)), None)
            if path is None:
                raise PlanError(f"--data-bin {data_bin}: no {'raw' if kind == 'raw' else 'tokenised'} {split} references "
                                f"({' or '.join(candidates)}); give {option} FILE")
            found[kind][split] = os.path.abspath(path)
    return References(found["raw"], found["tok"])
