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
import argparse
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys

from selfteach_pipeline import settings_table
from selfteach_pipeline.pipeline import REDONE_EACH_RUN, Pipeline, RunOptions, choose_device
from selfteach_pipeline.plan import Plan, PlanError
from selfteach_pipeline.runner import LocalRunner, main_guard, write_atomic
from selfteach_pipeline.startup import ROOT, served
from selfteach_pipeline.submitit_runner import ClusterOptions, SubmititRunner, dry_run
from selfteach_pipeline.translation_family import KINDS, TABLE, TranslationFamily, data_bin_references

PROG = "selfteach-translation-pipeline"
say = functools.partial(print, flush=True)  # each line out at once: a kill -9 of the run loses none


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line (main_guard), exit 2: no usage block
        raise PlanError(f"{message} (see --help)")


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("setting", metavar="SETTING", help="a column of scripts/translation_settings.tsv")
    ap.add_argument("--out", help="the run's folder (default runs/iwslt14-SETTING); running again resumes it")
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
    study.add_argument("--seeds", help="every trained row but the teacher is repeated with each seed (default: the "
                       "table's seeds), e.g. 1,2,3")
    study.add_argument("--seqkd", action="store_true", help="also train sequence-level KD students (the teacher "
                       "decodes the training set)")
    study.add_argument("--sweep", action="store_true", help="choose the distillation options on validation data: the "
                       "first offline student once per point of the table's sweep_grid, the pick (highest valid "
                       "sacreBLEU) given to every student and online model (sweep.md, sweep.json; test is never used)")
    study.add_argument("--sweep-grid", help="--sweep over this grid instead of the table's (KEY=V,V;KEY=V,V; keys "
                       "kd_alpha, kd_temperature, kd_direction), e.g. 'kd_alpha=0.3,0.5,0.7'")
    study.add_argument("--teacher-cache", action="store_true", help="offline, gradual and sweep students read their "
                       "teacher's top 8 logits per target token from a cache (OUT/caches, one per teacher, built once)")
    study.add_argument("--anydepth", action="store_true", help="also train one model with every decoder exit "
                       "(--student-exits all, the teacher's budget) and decode it at each exit (--exit-layer K)")
    study.add_argument("--quality-floor", help="the report names the shallowest student or exit whose valid "
                       "sacreBLEU is at least F × the teacher's (default: the table's quality_floor)")
    study.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a row of the settings table for this run (repeatable)")
    study.add_argument("--settings", help="a file of KEY VALUE lines overriding the table's rows")
    run = ap.add_argument_group("how it runs")
    run.add_argument("--cpu", action="store_true", help="train and decode on CPU even where CUDA is available")
    run.add_argument("--fp16", dest="fp16", action="store_const", const=True, help="half-precision training "
                     "(fairseq's --fp16): the default where CUDA is visible; refused on CPU")
    run.add_argument("--no-fp16", dest="fp16", action="store_const", const=False, help="float32 training on GPUs")
    run.add_argument("--world-size", type=int, help="processes per training on GPUs (default: every visible GPU)")
    run.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)), help="cores to use (default: all "
                     "this process may use); each stage gets cores ÷ the table's parallel_jobs threads")
    run.add_argument("--dry-run", action="store_true", help="print every choice and every stage's command, in order; "
                     "run nothing")
    run.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local",
                     help="local: lanes on this machine (default); slurm: every stage a Slurm job through submitit, "
                     "with its dependencies; submitit-local: submitit's local processes")
    run.add_argument("--no-forkserver", dest="forkserver", action="store_false", help="local: start every tool as "
                     "its own process (by default they are forks of one process that imported torch and fairseq once)")
    run.add_argument("--slurm-partition", default="", help="the Slurm partition of every job")
    run.add_argument("--time-min", type=int, default=240, help="each job's time limit in minutes (submitit)")
    run.add_argument("--gpus-per-training", type=int, default=0, help="GPUs of each fairseq-train and "
                     "fairseq-generate job (submitit)")
    return ap


def cuda_count() -> int:
    """How many CUDA devices torch sees, asked of a child process: planning itself never imports torch."""
    p = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count() if "
                        "torch.cuda.is_available() else 0)"], capture_output=True, text=True)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        raise PlanError(f"cannot import torch to count CUDA devices ({tail}); --cpu to train on CPU")
    return int(p.stdout.split()[-1])


def run_options(args, s, said) -> RunOptions:
    """The command line's options checked and turned into the run's, before any work."""
    seeds = args.seeds or ",".join(map(str, s["seeds"]))
    if not re.fullmatch(r"\d+(,\d+)*", seeds):
        raise PlanError(f"--seeds takes whole numbers, e.g. 1,2,3 (not '{seeds}')")
    floor = args.quality_floor or str(s["quality_floor"])
    if not re.fullmatch(r"0?\.\d*[1-9]\d*|1(\.0*)?", floor):
        raise PlanError(f"--quality-floor takes a fraction of the teacher's validation score, 0 < F <= 1, e.g. 0.97 "
                        f"(not '{floor}')")
    grid = None
    if args.sweep or args.sweep_grid:
        grid = args.sweep_grid or s["sweep_grid"]
        if grid is None:
            raise PlanError(f"--sweep: setting {args.setting} has no sweep_grid ({TABLE})")
        settings_table.sweep_grid(grid)
        if args.sweep_grid:
            said.append(f"the sweep's grid is --sweep-grid's ({grid}), not the table's")
    settings_table.check_depths(s["teacher_decoder_layers"], s["gradual_schedule"], s["student_depths"],
                                "decoder layers", TABLE)
    return RunOptions(tuple(int(v) for v in seeds.split(",")), grid, args.seqkd, args.teacher_cache,
                      args.anydepth or s["anydepth"], float(floor), args.cores, said)


def make_pipeline(argv, gpus=None):
    """(the parsed options, the pipeline) from a command line; gpus: CUDA devices (None: ask torch)."""
    args = parser().parse_args(argv)
    s = settings_table.load(TABLE, args.setting, KINDS, args.set, args.settings or "")
    said = []
    options = run_options(args, s, said)
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
    device = choose_device(said, 0 if args.cpu else (cuda_count() if gpus is None else gpus), args.cpu, args.fp16,
                           args.world_size)
    family = TranslationFamily(out, args.setting, s, device, data_bin=os.path.abspath(args.data_bin) if args.data_bin
                               else None, refs=refs, archive=args.archive, url=args.url, debs=args.debs, cores=args.cores)
    return args, s, Pipeline(out, s, family, options)


def main(argv=None) -> int:
    return main_guard(_main, argv)


def _main(argv) -> int:
    args, settings, pipeline = make_pipeline(argv)
    out, family = pipeline.out, pipeline.f
    if args.only_data:
        def build():
            plan = Plan()
            family.data_stages(plan)
            return plan
    else:
        build = pipeline.build
    cluster = ClusterOptions(args.slurm_partition, args.time_min, args.gpus_per_training)
    if args.dry_run:
        plan = build()
        sys.stdout.write(dry_run(plan, cluster) if args.executor == "slurm" else plan.dry_run())
        return 0
    os.makedirs(out, exist_ok=True)
    write_atomic(os.path.join(out, "settings.json"), json.dumps({"setting": args.setting, **settings}, indent=1) + "\n")
    for name in REDONE_EACH_RUN:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, "stages", f"{name}.done"))
    if not shutil.which("fairseq-train"):  # the tools installed beside this Python, where PATH has none
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    if args.executor == "local":
        with served(os.path.join(out, "forkserver"), say) if args.forkserver else contextlib.nullcontext():
            LocalRunner(out, args.cores, say).run(build)
    else:
        SubmititRunner(out, "slurm" if args.executor == "slurm" else "local", cluster, args.cores, say).run(build)
    if args.only_data:
        say(f"{PROG}: data ready in {family.prep()}")
    else:
        say(f"{PROG}: table {out}/results.md, results.json, plot {out}/{family.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
