"""Parameters a training step leaves without a gradient, under fairseq's `--ddp-backend pytorch_ddp`
(c10d, its default on GPUs).

torch's DistributedDataParallel, built without `find_unused_parameters`, waits for a gradient of every
parameter before it all-reduces. A parameter that gets none (a layer above `--teacher-exit`; the head
or norm of an exit the curriculum has turned off, or of an exit that is not trained) leaves the
reduction unfinished, and the next step stops with torch's "Expected to have finished reduction in the
prior iteration". With `--find-unused-parameters`, DDP instead marks as unused, when the forward ends,
every parameter the forward's outputs do not reach, which includes the exit heads and norms the
criterion applies to the hidden states afterwards; their gradients then arrive anyway and it stops
("Expected to mark a variable ready only once"). fairseq's `--ddp-backend legacy_ddp` all-reduces
after the backward, with zeros for missing gradients, and takes every configuration.

The criteria know beforehand which case they are in and stop in one line with the way out. Exits that
share the top's output layer or head, and layer dropout (a skipped layer still runs, so its
parameters get a zero gradient), leave nothing without one.
"""
from typing import List, Optional

from torch.nn.parallel import DistributedDataParallel

from selfteach_pipeline.errors import OptionError


def torch_ddp_of(model) -> Optional[DistributedDataParallel]:
    """The torch DistributedDataParallel around the model, if any (fairseq wraps it in its
    ModuleProxyWrapper: DDP is the wrapper's `module`)."""
    module = model
    while module is not None:
        if isinstance(module, DistributedDataParallel):
            return module
        module = getattr(module, "_modules", {}).get("module")
    return None


def check_gradient_sync(model, idle: List[str], outside_forward: str) -> None:
    """Refuse what torch DDP around the model would stop at. idle: why a step may leave parameters
    without a gradient; outside_forward: which parameters the criterion applies after the model's
    forward (exit heads and norms), "" for none."""
    ddp = torch_ddp_of(model)
    if ddp is None:
        return
    if ddp.find_unused_parameters and outside_forward:
        raise OptionError(
            f"{outside_forward}: with --find-unused-parameters, DistributedDataParallel marks them unused when "
            f"the forward ends and stops when their gradients arrive; use --ddp-backend legacy_ddp")
    if not ddp.find_unused_parameters and idle:
        way_out = ("use --ddp-backend legacy_ddp (--find-unused-parameters cannot: " + outside_forward + ")"
                   if outside_forward else "add --find-unused-parameters (or use --ddp-backend legacy_ddp)")
        raise OptionError(
            f"{'; '.join(idle)}: in several processes with --ddp-backend pytorch_ddp that leaves parameters "
            f"without a gradient, which DistributedDataParallel stops at; {way_out}")
