"""Student exits inside one model, shared by both families: which layers are exits, and the check that
each lies below the top layer (the teacher exit). Where an exit's distribution comes from is the
family's business (translation/exits.py: the decoder; classification: the head on layer k)."""
import re
from typing import List, Union

from selfteach_pipeline.errors import OptionError

ALL_EXITS = "all"


def parse_exits(spec: str, option: str = "--student-exits") -> Union[List[int], str]:
    """The exits as sorted layer numbers, or ALL_EXITS ("all": every layer below the teacher exit,
    resolved by resolve_exits once the model's depth is known)."""
    spec = (spec or "").strip()
    if not spec:
        return []
    if spec.lower() == ALL_EXITS:
        return ALL_EXITS
    parts = [x.strip() for x in spec.split(",")]
    if not all(re.fullmatch(r"[0-9]+", x) for x in parts):  # not int(): it takes "+3", "1_0" and "٣"
        raise OptionError(f"{option} must be a comma list of layer numbers such as 3 or 2,4; got {spec!r}")
    exits = sorted({int(x) for x in parts})
    if any(k < 1 for k in exits):
        raise OptionError(f"{option} layer numbers start at 1 (the first layer); got {spec!r}")
    return exits


def resolve_exits(exits: Union[List[int], str], teacher_layer: int) -> List[int]:
    return list(range(1, teacher_layer)) if exits == ALL_EXITS else list(exits)


def parse_exit_weights(spec: str, exits: List[int], option: str = "--exit-weights") -> List[float]:
    """One non-negative weight per student exit (shallowest first); default 1 each."""
    spec = (spec or "").strip()
    if not spec:
        return [1.0] * len(exits)
    try:
        weights = [float(x) for x in spec.split(",")]
    except ValueError:
        raise OptionError(f"{option} must be a comma list of numbers such as 0.5,1; got {spec!r}")
    if len(weights) != len(exits):
        raise OptionError(
            f"{option} {spec}: {len(weights)} weight(s) for {len(exits)} student exit(s) "
            f"({','.join(map(str, exits)) or 'none'}); give one per exit, shallowest first"
        )
    if any(not w >= 0.0 for w in weights):
        raise OptionError(f"{option} weights must be >= 0; got {spec!r}")
    return weights


def check_exit_layers(stack, side: str, exits: List[int], option: str = "--student-exits",
                      teacher_layer: int = 0) -> None:
    """Every exit must be below the teacher exit: the top layer of `stack` (an encoder or decoder),
    or layer teacher_layer when given (--teacher-exit)."""
    n = len(stack.layers)
    if teacher_layer and not 1 < teacher_layer <= n:
        raise OptionError(
            f"--teacher-exit {teacher_layer}: the {side} has {n} layers, so the teacher exit must be "
            f"between 2 and {n}"
        )
    top = teacher_layer or n
    if any(k >= top for k in exits):
        where = f"layer {top} is the teacher exit" + ("" if top == n else " (--teacher-exit)")
        raise OptionError(
            f"{option} {','.join(map(str, exits))}: the {side} has {n} layers, so a student exit "
            f"must be between 1 and {top - 1} ({where})"
        )


EXIT_CURRICULA = ("none", "rotational", "gradual")


def curriculum_exits(kind: str, exits: List[int], top: int, update: int, max_update: int = 0,
                     period: int = 2, fraction: float = 0.5) -> List[int]:
    """The student exits trained at update `update` (0-based) under LayerSkip's curricula (Elhoushi
    et al., 2024); the teacher exit (layer `top`) always trains. A function of the update alone, so a
    resumed run picks up exactly where it stopped.
      none        every exit, always;
      rotational  exit k where (k + update) mod period = 0: every period-th layer, shifted by one each
                  update (C_rot,R);
      gradual     exits switched on from the top down: exit k (after layer k of top) from the update
                  at which update / max_update >= fraction · (top - k + 1) / top, all on by `fraction`
                  of training (C_grad)."""
    if kind == "none" or not exits:
        return list(exits)
    if kind == "rotational":
        return [k for k in exits if (k + update) % period == 0]
    if kind == "gradual":
        done = update / max_update
        return [k for k in exits if done >= fraction * (top - k + 1) / top]
    raise OptionError(f"--exit-curriculum must be one of {', '.join(EXIT_CURRICULA)}; got {kind!r}")


def check_curriculum(kind: str, max_update: int, period: int, fraction: float) -> None:
    if kind == "rotational" and period < 1:
        raise OptionError(f"--exit-curriculum-period must be >= 1; got {period}")
    if kind == "gradual":
        if not max_update or max_update <= 0:
            raise OptionError("--exit-curriculum gradual spreads the exits over training: it needs --max-update")
        if not 0.0 < fraction <= 1.0:
            raise OptionError(f"--exit-curriculum-fraction must be in (0, 1]; got {fraction}")
