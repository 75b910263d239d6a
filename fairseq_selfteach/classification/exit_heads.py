"""Classification exits with a pooler and head of their own (DeeBERT, FastBERT and the seed research's
code all give each exit its own). Without them every exit reads layer k through the top layer's pooler
and head, which were trained on layer L; with `--exit-heads 2,3` (or `all`) exit k predicts through
the head `NAME_exit{k}`: its own pooler (a copy of BERT's pretrained one, pooling as --exit-pooling
says) and its own dense layer. The top layer keeps BERT's pooler and the task's head.

Exporting exit k keeps exactly what exit k computed: its head becomes the exported model's head and
its pooler the exported model's pooler, so the k-layer checkpoint predicts what exit k predicted.
"""
from typing import Dict, List

from fairseq_selfteach.core.exits import parse_exits, resolve_exits


def exit_head_name(head: str, layer: int) -> str:
    return f"{head}_exit{layer}"


def exit_head_base(name: str, heads) -> str:
    """The task head that `name` is an exit head of ("" when it is not one)."""
    base, sep, layer = name.rpartition("_exit")
    return base if sep and layer.isdigit() and base in heads else ""


def exit_head_layers(cfg) -> List[int]:
    """The layers with a head of their own (cfg.exit_heads: a comma list or "all", below the top)."""
    layers = int(cfg.encoder_layers)
    wanted = resolve_exits(parse_exits(getattr(cfg, "exit_heads", "") or "", "--exit-heads"), layers)
    too_deep = [k for k in wanted if k >= layers]
    if too_deep:
        raise ValueError(
            f"--exit-heads {getattr(cfg, 'exit_heads', '')}: the encoder has {layers} layers, so an exit "
            f"head must be on a layer between 1 and {layers - 1} (layer {layers} has the task's head)"
        )
    return wanted


def exit_pooling(cfg) -> str:
    return str(getattr(cfg, "exit_pooling", "") or "") or str(getattr(cfg, "pooling", "cls"))


def fill_exit_heads(state_dict: Dict, prefix: str, head_names: List[str]) -> None:
    """Exit heads a checkpoint lacks start from what the checkpoint has rather than from random weights:
    their pooler from the encoder's pooler (BERT's pretrained one, or a fine-tuned classifier's), and,
    where the checkpoint holds a trained task head (walking a fine-tuned teacher through online-gradual),
    their dense layer from that head, so exit k starts where the offline k-layer student starts."""
    head_prefix = prefix + "classification_heads."
    heads = {key[len(head_prefix):].split(".")[0] for key in state_dict if key.startswith(head_prefix)}
    for name in head_names:
        base = name.rpartition("_exit")[0]
        copies = [(f"pooler.dense.{part}", f"{prefix}encoder.pooler.dense.{part}") for part in ("weight", "bias")]
        if base in heads:
            copies += [(f"out_proj.{part}", f"{prefix}classification_heads.{base}.out_proj.{part}")
                       for part in ("weight", "bias")]
        for part, source in copies:
            key = f"{prefix}classification_heads.{name}.{part}"
            if key not in state_dict and source in state_dict:
                state_dict[key] = state_dict[source].clone()


def keep_exit_head(model_state: Dict, model_cfg: Dict, layer: int) -> Dict:
    """The state of the model cut to `layer` layers, with exit `layer`'s own head (where it has one)
    as its head and that head's pooler as its pooler; every other exit head is dropped."""
    heads = {k.split(".")[1] for k in model_state if k.startswith("classification_heads.")}
    suffix = f"_exit{layer}"
    out = {}
    for key, value in model_state.items():
        parts = key.split(".")
        base = exit_head_base(parts[1], heads) if key.startswith("classification_heads.") else ""
        if base:
            if parts[1] != base + suffix:
                continue  # another exit's head
            if parts[2] == "pooler":
                out["encoder.pooler." + ".".join(parts[3:])] = value
            else:
                out[".".join(["classification_heads", base] + parts[2:])] = value
            continue
        out.setdefault(key, value)
    own = any(exit_head_base(h, heads) and h.endswith(suffix) for h in heads)
    if own:
        model_cfg["pooling"] = model_cfg.get("exit_pooling") or model_cfg.get("pooling", "cls")
    model_cfg["exit_heads"] = ""
    model_cfg["exit_pooling"] = ""
    return out
