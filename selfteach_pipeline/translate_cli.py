"""selfteach-translation-pipeline SETTING: the translation pipeline, one settings column of
scripts/translation_settings.tsv (`bash scripts/iwslt14.sh SETTING …` runs this):

  data → teacher → baselines (pruned teacher, scratch students) → offline students → online exits
  → gradual schedule → [sequence-level KD] → [anydepth: one model, every exit] → export
  → fairseq-generate (beam, every test sentence) → sacreBLEU + tokenised BLEU, parameters, speed
  → results.md (with the depth pick) + bleu_vs_params.png

SETTING: de | ar | fa | es | he (IWSLT14 X→en), bible | bible-full | bible-ci | bible-study (offline
Es→En Bible verses). Re-running skips finished stages (markers in OUT/stages, written atomically after a
stage succeeds); an interrupted training resumes from its checkpoint_last.pt. Every stage's command is
logged in OUT/commands.sh, the settings used in OUT/settings.json; --dry-run prints them all.
"""
import os
import re
import sys

from selfteach_pipeline import pipeline_cli, settings_table
from selfteach_pipeline.device import choose_device
from selfteach_pipeline.pipeline import Pipeline
from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.startup import ROOT
from selfteach_pipeline.translation_family import KINDS, TABLE, TranslationFamily, data_bin_references

PROG = "selfteach-translation-pipeline"


def parser():
    ap = pipeline_cli.parser(PROG, __doc__, "scripts/translation_settings.tsv", "runs/iwslt14-SETTING")
    data = ap.add_argument_group("data")
    data.add_argument("--archive", default="", help="a local IWSLT14 archive: the pair's ({src}-en.tgz) or the "
                      "whole 2014-01 release (2014-01.tgz)")
    data.add_argument("--url", default="", help="download the archive from this URL (a mirror); IWSLT14_MIRROR works too")
    data.add_argument("--debs", default="", help="(bible settings) a folder with the sword-text-kjv/sparv .deb files "
                      "instead of apt-get")
    data.add_argument("--data-bin", help="your own fairseq-preprocess output (dict.SRC.txt, dict.TGT.txt, train/valid/"
                      "test): no data preparation; SRC and TGT are the setting's src and tgt (--set src=de)")
    data.add_argument("--test-raw", help="with --data-bin: the raw test references for sacreBLEU, one per line "
                      "(default: ref/test.TGT inside or beside the folder)")
    data.add_argument("--valid-raw", help="with --data-bin: the raw valid references (default: ref/valid.TGT)")
    data.add_argument("--test-tok", help="with --data-bin: the tokenised, lower-cased test references for "
                      "tokenised BLEU (default: tok/test.TGT inside or beside the folder)")
    data.add_argument("--valid-tok", help="with --data-bin: the tokenised valid references (default: tok/valid.TGT)")
    data.add_argument("--only-data", action="store_true", help="stop once the data is prepared (OUT/data/prep)")
    study = ap.add_argument_group("what is trained")
    pipeline_cli.add_study_options(study, "sacreBLEU")
    study.add_argument("--seqkd", action="store_true", help="also train sequence-level KD students (the teacher "
                       "decodes the training set)")
    study.add_argument("--anydepth", action="store_true", help="also train one model with every decoder exit "
                       "(--student-exits all, the teacher's budget) and decode it at each exit (--exit-layer K)")
    pipeline_cli.add_run_options(ap)
    return ap


def make_pipeline(argv, gpus=None, kind=Pipeline):
    """(the parsed options, the pipeline) from a command line; gpus: CUDA devices (None: ask torch)."""
    args = parser().parse_args(argv)
    s = settings_table.load(TABLE, args.setting, KINDS, args.set, args.settings or "")
    said = []
    options = pipeline_cli.run_options(args, s, said, TABLE, seqkd=args.seqkd, anydepth=args.anydepth or s["anydepth"])
    settings_table.check_depths(s["teacher_decoder_layers"], s["gradual_schedule"], s["student_depths"],
                                "decoder layers", TABLE)
    if args.data_bin and args.only_data:
        raise PlanError("--only-data prepares the data; --data-bin brings it prepared: give one of them")
    out = os.path.abspath(args.out or os.path.join(ROOT, "runs", f"iwslt14-{args.setting}"))
    refs = None
    if args.data_bin:
        if not os.path.isdir(args.data_bin):
            raise PlanError(f"--data-bin {args.data_bin}: no such folder")
        for lang in (s["src"], s["tgt"]):
            if not os.path.isfile(os.path.join(args.data_bin, f"dict.{lang}.txt")):
                found = sorted(f for f in os.listdir(args.data_bin) if f.startswith("dict."))
                raise PlanError(f"--data-bin {args.data_bin}: no dict.{lang}.txt (it has {', '.join(found) or 'none'}); "
                                f"--set src=… --set tgt=… name its languages")
        refs = data_bin_references(args.data_bin, s["tgt"], {f"--{k.replace('_', '-')}": v for k, v in vars(args).items()
                                                             if re.fullmatch(r"(test|valid)_(raw|tok)", k)})
        said.append(f"data: {os.path.abspath(args.data_bin)} ({s['src']}→{s['tgt']}), not prepared here; references "
                    f"{refs.raw['test']} (raw), {refs.tok['test']} (tokenised)")
    device = choose_device(said, 0 if args.cpu else (pipeline_cli.cuda_count() if gpus is None else gpus), args.cpu, args.fp16,
                           args.world_size)
    family = TranslationFamily(out, args.setting, s, device, data_bin=os.path.abspath(args.data_bin) if args.data_bin
                               else None, refs=refs, archive=args.archive, url=args.url, debs=args.debs, cores=args.cores)
    return args, s, kind(out, s, family, options)


def main(argv=None) -> int:
    return pipeline_cli.main(PROG, make_pipeline, argv)


if __name__ == "__main__":
    sys.exit(main())
