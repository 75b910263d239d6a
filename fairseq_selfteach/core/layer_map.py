"""Which teacher layers a shallower student starts from, and copying them; and reading a state
dict's layer lists (PREFIX.i.rest keys), for everything that counts, cuts or maps layers."""
import functools
import re
from typing import Dict, List, Optional, Tuple

import torch

LAYER_MAP_STRATEGIES = ("first", "last", "every_other")


@functools.lru_cache(maxsize=None)
def _layer_key(prefix: str):
    return re.compile(r"^" + re.escape(prefix) + r"\.(\d+)\.")


def split_layer_key(key: str, prefix: str) -> Optional[Tuple[int, str]]:
    """(i, rest) for a key PREFIX.i.rest of the layer list at prefix (e.g. "encoder.layers"), else None."""
    m = _layer_key(prefix).match(key)
    return (int(m.group(1)), key[m.end():]) if m else None


def layer_index(key: str, prefix: str) -> Optional[int]:
    """i for a key PREFIX.i.rest of the layer list at prefix, else None."""
    found = split_layer_key(key, prefix)
    return found[0] if found is not None else None


def layer_count(model_state, prefix: str) -> int:
    """Layers in the list at prefix: 1 + the highest index found (0 when there is none)."""
    found = {i for i in (layer_index(k, prefix) for k in model_state) if i is not None}
    return max(found) + 1 if found else 0


def keep_first_layers(model_state, prefix: str, keep: int):
    """A copy (same mapping type) with layers 0..keep-1 of the list at prefix and nothing after them."""
    out = type(model_state)()
    for k, v in model_state.items():
        i = layer_index(k, prefix)
        if i is None or i < keep:
            out[k] = v
    return out


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
    if re.fullmatch(r"[0-9]+(\s*,\s*[0-9]+)*", spec):
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
        repeated = sorted({i for i in layers if layers.count(i) > 1})
        if repeated:  # two student layers would start as the same teacher layer: surely a typo
            raise ValueError(f"{option} {spec!r} names teacher layer(s) {repeated} more than once")
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
    student_state = student.state_dict()
    source: Dict[str, str] = {}
    for key in student_state:
        teacher_key = key
        for prefix, layers in layer_maps.items():
            found = split_layer_key(key, prefix)
            if found is not None:
                teacher_key = f"{prefix}.{layers[found[0]]}.{found[1]}"
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
