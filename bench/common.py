"""What the benchmarks share: the lines that describe the run and the machine, and timing
(interleaved rounds, medians and quartiles, a clock that waits for CUDA before it is read).

The scripts run as `python bench/X.py`, so Python puts bench/ first on sys.path and `import common`
finds this file. torch and fairseq are imported only where a helper needs them.
"""
import json
import os
import platform
import shlex
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# describing the run and the machine


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def command_line(script: str, argv=None) -> str:
    """`command: python bench/X.py ARGS`: the interpreter's name, the script and its arguments,
    shell-quoted. argv: the arguments main() was given (None: this process's command line)."""
    if argv is None:
        shown, args = sys.argv[0], sys.argv[1:]
    else:
        shown, args = os.path.relpath(os.path.abspath(script), REPO), list(argv)
    words = [os.path.basename(sys.executable), shown] + [str(a) for a in args]
    return "command: " + " ".join(shlex.quote(w) for w in words)


def cpu_line() -> str:
    """`machine: CPU MODEL; N logical CPUs`."""
    return f"machine: {cpu_model()}; {os.cpu_count()} logical CPUs"


def versions_line(torch_detail: str = "") -> str:
    """`torch V[torch_detail], fairseq V, python V`."""
    import fairseq
    import torch

    return (f"torch {torch.__version__}{torch_detail}, fairseq {fairseq.__version__}, "
            f"python {platform.python_version()}")


def gpu_line() -> str:
    """`gpu: NAME (CUDA V)` of the current CUDA device."""
    import torch

    return f"gpu: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"


def machine_lines(script: str, argv=None, device: str = "cpu", torch_detail: str = "",
                  versions_tail: str = "") -> list:
    """The header a benchmark prints first: its command, the machine (CPU, cores, OS), the
    versions (torch_detail right after torch's; versions_tail at the end of that line) and, on
    CUDA, the GPU."""
    lines = [
        command_line(script, argv),
        f"{cpu_line()}; {platform.platform()}",
        versions_line(torch_detail) + versions_tail,
    ]
    if device == "cuda":
        lines.append(gpu_line())
    return lines


# ---------------------------------------------------------------------------------------------
# options


def add_device_option(parser, help="where to run; cuda only if torch sees a GPU") -> None:
    """--device cpu|cuda (default cpu)."""
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help=help)


def check_device(parser, args) -> None:
    """Refuse --device cuda, with a parser error, where torch sees no GPU."""
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no GPU")


# ---------------------------------------------------------------------------------------------
# timing


def sync_for(device):
    """What makes the host wait for `device` (a name or torch.device): CUDA kernels run
    asynchronously, so a clock read without it measures the launch, not the work."""
    if getattr(device, "type", device) == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


class Stopwatch:
    """perf_counter readings taken after waiting for the device: start(), then lap() returns the
    seconds since the last reading; time(fn) is both around one call."""

    def __init__(self, device="cpu"):
        self.sync = sync_for(device)
        self._last = None

    def start(self) -> None:
        self.sync()
        self._last = time.perf_counter()

    def lap(self) -> float:
        self.sync()
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        return seconds

    def time(self, fn) -> float:
        self.start()
        fn()
        return self.lap()


def interleaved(keys, rounds: int, run, warmup: int = 0):
    """Call run(key, round) for every key, round after round, in the order of `keys` and reversed
    every other round, so drifts in machine speed and cache effects hit every key alike. The first
    `warmup` rounds are discarded (round numbers count them). Returns ({key: [what run returned in
    each kept round]}, wall seconds of all rounds)."""
    keys = list(keys)
    results = {k: [] for k in keys}
    t0 = time.perf_counter()
    for r in range(warmup + rounds):
        for k in (keys if r % 2 == 0 else keys[::-1]):
            out = run(k, r)
            if r >= warmup:
                results[k].append(out)
    return results, time.perf_counter() - t0


def median(xs) -> float:
    return statistics.median(list(xs))


def quartiles(xs):
    """(p25, p75); a single value is both."""
    xs = list(xs)
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


# ---------------------------------------------------------------------------------------------
# output


def write_json(path: str, data, indent: int = 2) -> None:
    """Write data as JSON atomically (a reader never sees half a file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=indent)
    os.replace(tmp, path)
