"""fairseq-generate for many models in one process (the translation pipeline's decoding), plain fairseq.

    python scripts/generate_jobs.py DATA [fairseq-generate options] --jobs JOBS.tsv

Each line of JOBS.tsv is one run: `--output FILE` and that run's own fairseq-generate options (e.g.
--path MODEL.pt), tab-separated, added to the options given here (the format of the package's
`--jobs`, fairseq_selfteach/cli/jobs.py). Each run is fairseq's own `fairseq_cli.generate.main`; what it
prints and logs goes to FILE as `fairseq-generate ... > FILE 2>&1` would write it (FILE.tmp first,
renamed once the run succeeded). Why: a fairseq-generate process spends about 10 s starting (torch and
fairseq imports, on 2 CPU cores) and decodes a small test set in 1-2 s; a pipeline decoding twenty
models starts once per lane instead of twenty times.

The plugin is never imported unless a run asks for it: this file lives outside the package, imports
only fairseq and the jobs reader (loaded from its file, not through the package), and checks after every
run without --user-dir that fairseq_selfteach is not in sys.modules. So a model that decodes here without
--user-dir decodes with plain fairseq. A run with --user-dir (the pipeline's decodings at any exit,
--exit-layer) loads the plugin for the rest of the process, so the plain runs must come in a process
of their own: a plain run after a plugin run is refused.
"""
import contextlib
import importlib.util
import logging
import os
import sys
import traceback

PROG = "generate_jobs.py"


def _jobs_module():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "fairseq_selfteach", "cli", "jobs.py")
    spec = importlib.util.spec_from_file_location("selfteach_jobs_reader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generation_args(argv):
    """fairseq-generate's own parser (fairseq_cli.generate.cli_main's, with its --arch workaround)."""
    from fairseq import options

    parser = options.get_generation_parser()
    parser.add_argument("--arch", "-a", metavar="ARCH", default="wav2vec2",
                        help="model architecture, as fairseq-generate takes it")
    return options.parse_args_and_arch(parser, argv)


def generate_one(argv) -> int:
    if "--output" not in argv[:-1]:
        print(f"{PROG}: error: each run needs --output FILE (where its fairseq-generate output goes)", file=sys.stderr)
        return 2
    i = argv.index("--output")
    out, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    from fairseq_cli import generate

    plugin_run = any(a == "--user-dir" or a.startswith("--user-dir=") for a in argv)
    plugin_loaded = "fairseq_selfteach" in sys.modules
    tmp = out + ".tmp"
    rc = 0
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with open(tmp, "w", encoding="utf-8", buffering=1) as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
        root.handlers, root.level = [handler], logging.INFO  # fairseq-generate's log lines, into FILE
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                generate.main(generation_args(argv))
        except SystemExit as e:  # fairseq's parser refused an option (its message is in FILE)
            rc = e.code if isinstance(e.code, int) else 2
        except Exception:  # as the CLI: the traceback goes to the run's output
            traceback.print_exc(file=f)
            rc = 1
        finally:
            root.handlers, root.level = saved
    if "fairseq_selfteach" in sys.modules and not plugin_run:
        print(f"{PROG}: error: decoding {out} imported the plugin (fairseq_selfteach): not plain fairseq"
              + (" (an earlier run here had --user-dir: give the plain runs a process of their own)"
                 if plugin_loaded else ""), file=sys.stderr)
        return 1
    if rc:
        with open(tmp, encoding="utf-8") as f:
            sys.stderr.write("".join(f.readlines()[-20:]))
        print(f"{PROG}: error: decoding into {out} failed (its output: {tmp})", file=sys.stderr)
        return rc
    os.replace(tmp, out)
    return 0


def main(argv=None) -> int:
    return _jobs_module().run_jobs(generate_one, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
