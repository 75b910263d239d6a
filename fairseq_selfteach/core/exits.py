"""Student exits inside one model, shared by both families: which layers are exits, and the check that
each lies below the top layer (the teacher exit). Where an exit's distribution comes from is the
family's business (translation/exits.py: the decoder; classification: the head on layer k)."""
from typing import List

from fairseq_selfteach.core.errors import OptionError


def parse_exits(spec: str, option: str = "--student-exits") -> List[int]:
    spec = (spec or "").strip()
    if not spec:
        return []
    try:
        exits = sorted({int(x) for x in spec.split(",")})
    except ValueError:
        raise OptionError(f"{option} must be a comma list of layer numbers such as 3 or 2,4; got {spec!r}")
    if any(k < 1 for k in exits):
        raise OptionError(f"{option} layer numbers start at 1 (the first layer); got {spec!r}")
    return exits


def check_exit_layers(stack, side: str, exits: List[int], option: str = "--student-exits") -> None:
    """Every exit must be below the top layer of `stack` (an encoder or decoder), the teacher exit."""
    n = len(stack.layers)
    if any(k >= n for k in exits):
        raise OptionError(
            f"{option} {','.join(map(str, exits))}: the {side} has {n} layers, so a student exit "
            f"must be between 1 and {n - 1} (layer {n} is the teacher exit)"
        )
