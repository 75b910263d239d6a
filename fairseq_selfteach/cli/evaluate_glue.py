"""Score every example of a binarised GLUE split with a fine-tuned checkpoint.

    python -m fairseq_selfteach.cli.evaluate_glue --data BIN --path CKPT [--subset valid] [--json OUT]
        [--predictions OUT.tsv] [--batch-size 64] [--cpu] [--classification-head-name NAME]

BIN is a folder written by preprocess/glue_binarize.py; CKPT a checkpoint whose model has the
classification head (fine-tuned with --task glue). Every example of the split is scored exactly once
(checked by id), and the task's metrics are computed from the whole arrays with scikit-learn/scipy
(fairseq_selfteach.classification.metrics.compute_metrics), in percent, with glue_score the task's own number.
Unlabelled splits (GLUE test sets, AX) get predictions only: --predictions writes GLUE's submission
format (`index<TAB>prediction`, the label names of meta.json, or the score for STS-B).
The JSON (--json, written atomically) holds task, subset, data, checkpoint, examples, scored,
metrics, glue_score, encoder_layers and exact parameter counts (params: every parameter of the
checkpoint; head_params: those of the classification head), plus name and method when given (the
row labels of a pipeline's results table, see selfteach_pipeline.report), mean_nll (the mean gold
cross-entropy, nats), collapsed (a reason when every example got one class or the loss is at chance
level, else null), the model's seed, updates, train_seconds and started_from (the exported
checkpoint's record), examples_per_s, and `outputs` (outputs/NAME.json beside it: predictions and
targets, which the report resamples). --valid-subset S also scores the split S (a held-out part of
train, or the scored split itself where there is none) into valid_glue_score and valid_subset: what the
report's depth pick (--quality-floor) reads. The checkpoint is loaded by fairseq's loader in torch's
safe mode.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from fairseq_selfteach.core import error_report


class EvaluationError(RuntimeError):
    pass


def load(path: str, data: str, head: str = None, exit_layer: int = 0):
    """(model in eval mode, GlueTask for data, head name). exit_layer K: the model of exit K (its first K
    layers, exit K's own head where it has one), cut from the checkpoint as export_student cuts it."""
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    from fairseq_selfteach.classification.glue_task import GlueConfig, GlueTask
    from fairseq_selfteach.core.checkpoint_io import load_checkpoint

    state = load_checkpoint(path)
    if exit_layer:
        cut_to_exit(state, exit_layer, path)
    cfg = state.get("cfg") or {}
    task_cfg = cfg.get("task") if hasattr(cfg, "get") else None
    if head is None:
        head = (task_cfg or {}).get("classification_head_name") or GlueConfig.classification_head_name
    key = f"classification_heads.{head}.out_proj.weight"
    if key not in state["model"]:
        heads = sorted({k.split(".")[1] for k in state["model"] if k.startswith("classification_heads.")})
        raise EvaluationError(
            f"{path} has no classification head {head!r} "
            f"({'heads: ' + ', '.join(heads) if heads else 'no heads at all: a pretrained model, not fine-tuned'})"
        )
    glue_cfg = OmegaConf.structured(GlueConfig(data=data, classification_head_name=head))
    task = GlueTask.setup_task(glue_cfg)
    if state["model"][key].size(0) != task.num_classes:
        raise EvaluationError(
            f"{path}: head {head!r} has {state['model'][key].size(0)} outputs but {data} "
            f"({task.glue_task}) has {task.num_classes}"
        )
    models, _cfg, _task = checkpoint_utils.load_model_ensemble_and_task([path], task=task, state=state)
    return models[0].eval(), task, head


def cut_to_exit(state: dict, layer: int, path: str) -> None:
    from fairseq_selfteach.classification.exit_heads import keep_exit_head
    from fairseq_selfteach.core.export import _as_dict
    from fairseq_selfteach.core.layer_map import keep_first_layers, layer_count

    have = layer_count(state["model"], "encoder.layers")
    if not 1 <= layer <= have:
        raise EvaluationError(f"--exit-layer {layer}: {path} has {have} encoder layers, so choose 1..{have}")
    model_cfg = _as_dict(state["cfg"]["model"])
    model_cfg["encoder_layers"] = layer
    state["model"] = keep_exit_head(keep_first_layers(state["model"], "encoder.layers", layer), model_cfg, layer)
    state["cfg"]["model"] = model_cfg


@torch.no_grad()
def predict(model, task, subset: str, head: str, batch_size: int, use_cuda: bool):
    """(ids, predictions, targets or None, mean gold cross-entropy in nats or None) for every example
    of the split, in id order."""
    from fairseq import utils

    dataset = task.load_dataset(subset)
    itr = task.get_batch_iterator(
        dataset,
        max_sentences=batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        ignore_invalid_inputs=False,
        required_batch_size_multiple=1,
    ).next_epoch_itr(shuffle=False)
    ids, preds, targets, nll = [], [], [], 0.0
    for sample in itr:
        if use_cuda:
            sample = utils.move_to_cuda(sample)
        logits = model(**sample["net_input"], features_only=True, classification_head_name=head)[0]
        out = logits.float().view(-1) if task.regression else logits.argmax(dim=-1)
        ids.append(sample["id"].cpu())
        preds.append(out.cpu())
        if "target" in sample:
            targets.append(sample["target"].cpu())
            if not task.regression:
                nll += float(torch.nn.functional.cross_entropy(
                    logits.float(), sample["target"].view(-1).long(), reduction="sum"))
    ids = torch.cat(ids).numpy() if ids else np.zeros(0, dtype=np.int64)
    n = len(dataset)
    if len(ids) != n or not np.array_equal(np.sort(ids), np.arange(n)):
        raise EvaluationError(f"scored {len(ids)} predictions for the {n} examples of {subset}: not each once")
    order = np.argsort(ids)
    preds = torch.cat(preds).numpy()[order]
    targets = torch.cat(targets).numpy()[order] if targets else None
    mean_nll = nll / n if targets is not None and not task.regression and n else None
    return ids[order], preds, targets, mean_nll


def size_of(state_model, head):
    """(encoder layers, exact parameters, parameters of the head) of a checkpoint's model state."""
    from fairseq_selfteach.cli.param_count import count_parameters
    from fairseq_selfteach.core.layer_map import layer_count

    head_state = {k: v for k, v in state_model.items() if k.startswith(f"classification_heads.{head}.")}
    return (layer_count(state_model, "encoder.layers"), count_parameters(state_model)["total"],
            count_parameters(head_state)["total"])


def evaluate(data, path, subset="valid", batch_size=64, cpu=False, head=None, exit_layer=0, valid_subset=None):
    from selfteach_pipeline.glue_metrics import SCORE_NAME, compute_metrics
    from selfteach_pipeline.results import collapse

    use_cuda = torch.cuda.is_available() and not cpu
    model, task, head = load(path, data, head, exit_layer)
    layers, params, head_params = size_of(model.state_dict(), head)
    if use_cuda:
        model.cuda()
    start = time.time()
    ids, preds, targets, mean_nll = predict(model, task, subset, head, batch_size, use_cuda)
    elapsed = time.time() - start
    result = {
        "task": task.glue_task,
        "subset": subset,
        "data": os.path.abspath(data),
        "checkpoint": os.path.abspath(path),
        "examples": len(task.datasets[subset]),
        "scored": int(len(ids)),
        "seconds": round(elapsed, 3),
        "examples_per_s": round(len(ids) / max(elapsed, 1e-9), 1),
        "encoder_layers": layers,
        "params": params,
        "head_params": head_params,
    }
    if targets is not None:
        metrics = compute_metrics(task.glue_task, preds, targets)
        result[SCORE_NAME] = metrics.pop(SCORE_NAME)
        result["metrics"] = metrics
        if mean_nll is not None:
            result["mean_nll"] = round(mean_nll, 4)
        result["collapsed"] = collapse.classification(preds, targets, task.num_classes, mean_nll, task.regression)
    if valid_subset:  # the depth pick's evidence: the same metric on the validation split
        if valid_subset == subset:
            valid_score = result.get(SCORE_NAME)
        else:
            _, valid_preds, valid_targets, _ = predict(model, task, valid_subset, head, batch_size, use_cuda)
            if valid_targets is None:
                raise EvaluationError(f"--valid-subset {valid_subset}: the split has no labels to score")
            valid_score = compute_metrics(task.glue_task, valid_preds, valid_targets)[SCORE_NAME]
        result.update({"valid_glue_score": valid_score, "valid_subset": valid_subset})
    return result, preds, targets, task


def write_predictions(path, preds, task):
    from selfteach_pipeline.files import atomic_write_text

    labels = task.meta.get("labels")
    lines = ["index\tprediction\n"]
    for i, p in enumerate(preds):
        lines.append(f"{i}\t{float(p):.6g}\n" if task.regression else f"{i}\t{labels[int(p)]}\n")
    atomic_write_text(path, "".join(lines))


def main(argv=None) -> int:
    error_report.install()  # a user's error is one line, no traceback, also inside fairseq's code
    return evaluate_one(sys.argv[1:] if argv is None else list(argv))


def evaluate_one(argv) -> int:
    p = argparse.ArgumentParser(prog="python -m fairseq_selfteach.cli.evaluate_glue", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder written by preprocess/glue_binarize.py")
    p.add_argument("--path", required=True, help="fine-tuned checkpoint (its model has the classification head)")
    p.add_argument("--subset", default="valid", help="split to score: valid, valid_mismatched, test, ... (default valid)")
    p.add_argument("--json", help="write the result here as JSON")
    p.add_argument("--predictions", help="write index<TAB>prediction for every example (GLUE submission format)")
    p.add_argument("--name", help="row name recorded in the JSON (e.g. offline_enc3)")
    p.add_argument("--method", help="row method recorded in the JSON (teacher, offline, online, gradual, ...)")
    p.add_argument("--dataset", help="dataset label recorded in the JSON when it is not the task's own "
                   "data (e.g. sentiment: movie-review snippets in the SST-2 layout); default: the task")
    p.add_argument("--exit-layer", type=int, default=0, metavar="K",
                   help="score exit K of an online checkpoint (its first K layers, exit K's own head where it "
                   "has one): what export_student --encoder-layers K would write, without writing it")
    p.add_argument("--valid-subset", metavar="SPLIT", help="also score this split into valid_glue_score (the "
                   "depth pick's validation score; the scored split itself where there is no held-out one)")
    p.add_argument("--batch-size", type=int, default=64, help="examples per batch (default 64)")
    p.add_argument("--cpu", action="store_true", help="score on the CPU even when a GPU is there")
    p.add_argument(
        "--classification-head-name", default=None,
        help="head to score with; default: the checkpoint's task setting, else sentence_classification_head",
    )
    a = p.parse_args(argv)

    import fairseq_selfteach  # noqa: F401  (the model, the task and safe checkpoint loading)
    from fairseq_selfteach.core.checkpoint_io import CheckpointError
    from selfteach_pipeline.glue_format import GlueDataError

    errors = (EvaluationError, CheckpointError, GlueDataError, FileNotFoundError)
    try:
        result, preds, targets, task = evaluate(a.data, a.path, a.subset, a.batch_size, a.cpu,
                                                a.classification_head_name, a.exit_layer, a.valid_subset)
    except errors as e:
        print(f"evaluate_glue: error: {e}", file=sys.stderr)
        return 1
    if a.name or a.method:
        result = {"name": a.name or os.path.basename(a.path), "method": a.method or "model", **result}
    result["dataset"] = a.dataset or result["task"]
    if a.predictions:
        write_predictions(a.predictions, preds, task)
    if a.json:
        from fairseq_selfteach.core.checkpoint_io import load_checkpoint
        from selfteach_pipeline.files import atomic_write_text
        from selfteach_pipeline.results import rows

        result.update(rows.provenance_fields(load_checkpoint(a.path)))
        if targets is not None:  # the per-example outputs the report's intervals and tests resample
            result["outputs"] = rows.write_outputs(a.json, {
                "predictions": preds.tolist(), "targets": targets.tolist(), "regression": bool(task.regression)})
        atomic_write_text(a.json, json.dumps(result, indent=1) + "\n")
    shown = " | ".join(f"{k} {v:.2f}" for k, v in result.get("metrics", {}).items())
    score = f" | glue_score {result['glue_score']:.2f}" if "glue_score" in result else " (unlabelled)"
    print(f"evaluate_glue: {result['task']} {result['subset']}: {result['scored']}/{result['examples']} scored"
          f"{' | ' + shown if shown else ''}{score} | {result['encoder_layers']} layers, "
          f"{result['params']:,} parameters")
    if result.get("collapsed"):
        print(f"evaluate_glue: warning: {a.name or a.path}: {result['collapsed']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
