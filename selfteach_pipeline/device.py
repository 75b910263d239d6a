"""Where a pipeline's trainings and decodings run, chosen from what torch sees and the user's --cpu,
--fp16/--no-fp16 and --world-size (planning never imports torch: the count is asked of a child)."""
from dataclasses import dataclass
from typing import List, Optional

from selfteach_pipeline.plan import PlanError


@dataclass
class Device:
    """Where trainings and decodings run: CPU, or the GPUs torch sees (in half precision unless told not
    to, one process per GPU unless --world-size says otherwise)."""
    gpus: int = 0
    fp16: bool = False
    world_size: int = 1

    def train_options(self) -> List[object]:
        if not self.gpus:
            return ["--cpu"]
        options: List[object] = ["--fp16"] if self.fp16 else []
        options += ["--distributed-world-size", self.world_size]
        # online-gradual stages leave layers without a gradient and exit heads are applied after the
        # model's forward, which torch's DDP (pytorch_ddp) stops at either way; legacy_ddp takes both
        return options + (["--ddp-backend", "legacy_ddp"] if self.world_size > 1 else [])

    def decode_options(self) -> List[object]:
        return [] if self.gpus else ["--cpu"]


def choose_device(plan_choices: List[str], gpus: int, forced_cpu: bool, fp16: Optional[bool],
                  world_size: Optional[int]) -> Device:
    """The device from what torch sees and the user's --cpu, --fp16/--no-fp16, --world-size; each choice said."""
    if not gpus:
        if fp16:
            raise PlanError("--fp16 is fairseq's half-precision training on CUDA devices; on CPU the pipelines train "
                            "in float32 (leave out --fp16)")
        if world_size:
            raise PlanError("--world-size is for CUDA devices; on CPU, run fairseq-train under torchrun (README)")
        if not forced_cpu:
            plan_choices.append("torch sees no CUDA device: training and evaluating on CPU")
        plan_choices.append("training in float32 (CPU)")
        return Device()
    if world_size and world_size > gpus:
        raise PlanError(f"--world-size {world_size}: only {gpus} CUDA device{'s' * (gpus != 1)} visible "
                        "(CUDA_VISIBLE_DEVICES); on CPU, run fairseq-train under torchrun (README)")
    device = Device(gpus, fp16 is not False, world_size or gpus)
    plan_choices.append("training in half precision (--fp16, fairseq's mixed precision with a dynamic loss scale; "
                        "--no-fp16 for float32)" if device.fp16 else "training in float32 (--no-fp16)")
    if device.world_size > 1:
        plan_choices.append(f"{gpus} CUDA devices visible: every training runs in {device.world_size} processes "
                            f"(--distributed-world-size {device.world_size} --ddp-backend legacy_ddp; --world-size N to "
                            "change), so one update holds that many batches")
    return device
