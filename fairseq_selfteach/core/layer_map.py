"""Which teacher layers a shallower student starts from, and copying them."""
import re
from typing import Dict, List

import torch

LAYER_MAP_STRATEGIES = ("first", "last", "every_other")


def resolve_layer_map(spec: str, teacher_layers: int, student_layers: int, side: str) -> List[int]:
    """Teacher layer indices (0-based) for student layers 0..student_layers-1.

    spec is a strategy name (first, last, every_other) or an explicit comma list such as "0,2,5".
    side ("encoder"/"decoder"/"layers") only makes error messages name the right option.
    """
    option = f"--student-{side}-layer-map" if side in ("encoder", "decoder") else "--student-layer-map"
    if student_layers > teacher_layers:
        raise ValueError(
            f"student {side} depth {student_layers} is greater than the teacher's {teacher_layers}"
        )
    spec = spec.strip()
    if spec == "first":
        return list(range(student_layers))
    if spec == "last":
        return list(range(teacher_layers - student_layers, teacher_layers))
    if spec == "every_other":
        if 2 * student_layers - 1 > teacher_layers:
            raise ValueError(
                f"{option} every_other needs a teacher with at least {2 * student_layers - 1} "
                f"{side} layers for a {student_layers}-layer student; the teacher has {teacher_layers}"
            )
        return list(range(0, 2 * student_layers, 2))
    if re.fullmatch(r"\d+(\s*,\s*\d+)*", spec):
        layers = [int(x) for x in spec.split(",")]
        if len(layers) != student_layers:
            raise ValueError(
                f"{option} {spec!r} lists {len(layers)} layers but the student has {student_layers}"
            )
        bad = [i for i in layers if i >= teacher_layers]
        if bad:
            raise ValueError(
                f"{option} {spec!r} names teacher layer(s) {bad}; the teacher has {teacher_layers} "
                f"(0-based indices 0..{teacher_layers - 1})"
            )
        return layers
    raise ValueError(
        f"unknown {option} {spec!r}: use one of {', '.join(LAYER_MAP_STRATEGIES)} or a comma list "
        f"of 0-based teacher layer indices such as 0,2,4"
    )


def copy_teacher_into_student(
    student: torch.nn.Module,
    teacher_state: Dict[str, torch.Tensor],
    layer_maps: Dict[str, List[int]],
) -> Dict[str, str]:
    """Initialise the student in place from the teacher's state dict.

    layer_maps maps a layer-list prefix (e.g. "encoder.layers", "decoder.layers") to the teacher
    layer indices. Parameters outside those lists (embeddings, positions, output projection, final
    layer norms, pooler, heads) are copied under the same name. Returns {student key: teacher key}
    so callers and tests can check what came from where.

    Every student tensor must get a value of the same shape: a student of another width, or with a
    parameter the teacher lacks, is an error rather than a silent random initialisation.
    """
    patterns = {
        prefix: re.compile(r"^" + re.escape(prefix) + r"\.(\d+)\.(.*)$") for prefix in layer_maps
    }
    student_state = student.state_dict()
    source: Dict[str, str] = {}
    for key in student_state:
        teacher_key = key
        for prefix, pat in patterns.items():
            m = pat.match(key)
            if m:
                teacher_key = f"{prefix}.{layer_maps[prefix][int(m.group(1))]}.{m.group(2)}"
                break
        if teacher_key not in teacher_state:
            raise ValueError(
                f"the teacher has no parameter {teacher_key!r} for the student's {key!r}: is the "
                f"student the same architecture as the teacher?"
            )
        if teacher_state[teacher_key].shape != student_state[key].shape:
            raise ValueError(
                f"shape mismatch for {key!r}: student {tuple(student_state[key].shape)}, teacher "
                f"{teacher_key!r} {tuple(teacher_state[teacher_key].shape)}; the student must have "
                f"the teacher's width and vocabulary"
            )
        source[key] = teacher_key
    new_state = {k: teacher_state[v].clone() for k, v in source.items()}
    student.load_state_dict(new_state, strict=True)
    return source
