"""Results rows: one JSON file per evaluated model and seed (written by score_translation and
evaluate_glue), aggregated here into one row per model (its seeds together) with its budget, interval,
baseline and p-values: the rows of results.md and results.json.

A per-seed row holds name, method, params, the depth (decoder_layers or encoder_layers), the metric
(sacrebleu or glue_score), seed, updates, train_seconds, started_from (from the exported checkpoint's
provenance, see core/export.training_record), collapsed (a reason, or null) and `outputs`: a file,
relative to the row's folder, with the per-sentence or per-example outputs the tests resample. A row may
also hold its metric on validation (valid_sacrebleu, valid_glue_score), which the depth pick reads
(results.depth_pick). Method `anydepth`: one exit of the model trained with every exit, decoded at it.
"""
import glob
import json
import os
from typing import Dict, List, Optional

import numpy as np

from selfteach_pipeline.results import significance

SELF_TAUGHT = ("offline", "online", "gradual", "online-gradual", "seqkd", "anydepth")
# in order of preference for a row's baseline at its own number of updates: the teacher's first k layers
# without the KL (what the KL adds), then k fresh layers; equal compute is every row's second comparison.
# (*-teacher-budget: k fresh layers with the teacher's updates, in results written before equal compute)
BASELINES = {
    "translation": ("ce-same-init", "scratch-same-budget", "scratch-equal-compute", "scratch-teacher-budget"),
    "classification": ("ce-same-init", "truncated-same-budget", "truncated-equal-compute", "truncated-teacher-budget"),
}
EQUAL_COMPUTE = {"translation": "scratch-equal-compute", "classification": "truncated-equal-compute"}
METHOD_ORDER = ("teacher",) + SELF_TAUGHT + BASELINES["translation"] + BASELINES["classification"][1:] + ("pruned",)
OUTPUTS_DIR = "outputs"


class RowsError(Exception):
    pass


def provenance_fields(checkpoint_state: dict) -> dict:
    """seed, updates, train_seconds, started_from of an exported checkpoint (its "selfteach" record)."""
    training = (checkpoint_state.get("selfteach") or {}).get("training") or {}
    return {k: training.get(k) for k in ("seed", "updates", "train_seconds", "started_from", "best_update")}


def write_outputs(row_json: str, outputs: dict) -> str:
    """Write a row's per-item outputs beside it (outputs/NAME.json, atomically); the relative path."""
    from selfteach_pipeline.files import atomic_write_text

    rel = os.path.join(OUTPUTS_DIR, os.path.basename(row_json))
    os.makedirs(os.path.join(os.path.dirname(os.path.abspath(row_json)), OUTPUTS_DIR), exist_ok=True)
    atomic_write_text(os.path.join(os.path.dirname(os.path.abspath(row_json)), rel), json.dumps(outputs) + "\n")
    return rel


def depth(row) -> int:
    return row.get("decoder_layers", row.get("encoder_layers", 0))


def family(rows) -> str:
    return "classification" if any("glue_score" in r or r.get("metric") == "glue_score" for r in rows) else "translation"


def load(results_dirs) -> List[dict]:
    """Every per-seed row of the folders, each with `_outputs` (its outputs file, absolute)."""
    rows = []
    for results_dir in [results_dirs] if isinstance(results_dirs, str) else results_dirs:
        paths = sorted(glob.glob(os.path.join(results_dir, "*.json")))
        if not paths:
            raise RowsError(f"no *.json rows in {results_dir}")
        for path in paths:
            with open(path) as f:
                row = json.load(f)
            missing = [k for k in ("name", "method", "params") if k not in row]
            if missing:
                raise RowsError(f"{path} has no {', '.join(missing)} (not a results row)")
            if row.get("outputs"):
                row["_outputs"] = os.path.join(os.path.dirname(os.path.abspath(path)), row["outputs"])
            rows.append(row)
    return rows


def _read_outputs(row) -> Optional[dict]:
    """The row's outputs file, read once (kept on the row: every test of the row reuses it)."""
    if not row.get("_outputs"):
        return None
    if "_loaded" not in row:
        with open(row["_outputs"]) as f:
            row["_loaded"] = json.load(f)
    return row["_loaded"]


def _group_key(row):
    return (row.get("dataset", row.get("task", "")), row["name"])


def aggregate(rows: List[dict]) -> List[dict]:
    """One row per (dataset, name): the seeds' mean, sd, interval of the mean; the baseline with the
    row's updates, the equal-compute baseline and the teacher, each with the difference (row minus it)
    and its p-value; ordered teacher first, then deepest first."""
    kind = family(rows)
    metric = "glue_score" if kind == "classification" else "sacrebleu"
    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        groups.setdefault(_group_key(r), []).append(r)
    out = {key: _summary(seeds, metric) for key, seeds in groups.items()}
    for key, row in out.items():
        row["baseline"] = _baseline_of(row, out.values(), kind)
        row["equal_compute"] = _equal_compute_of(row, out.values(), kind)
        teacher = next((t for t in out.values() if t["method"] == "teacher" and t["dataset"] == row["dataset"]), None)
        row["teacher"] = teacher["name"] if teacher and teacher is not row else None
    cache = {}
    for key, row in out.items():
        for against, field in (("baseline", "p_value"), ("equal_compute", "p_value_equal_compute"),
                                ("teacher", "p_value_teacher")):
            other = out.get((row["dataset"], row[against])) if row[against] else None
            # the direction: a p-value is never read without it
            row["delta_" + against] = round(row["mean"] - other["mean"], 2) if other else None
            p_values = [_p_value(kind, metric, s, other, cache) if other else None for s in groups[key]]
            for seed_entry, p in zip(row["seeds"], p_values):
                seed_entry[field] = p
            row[field] = significance.largest(p_values)
        row["p_test"] = _test_name(kind, groups[key][0])
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(out.values(), key=lambda r: (r["dataset"], r["method"] != "teacher", -r["depth"],
                                               order.get(r["method"], len(order)), r["name"]))


def _summary(seed_rows: List[dict], metric: str) -> dict:
    seed_rows = sorted(seed_rows, key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
    first = seed_rows[0]
    values = np.array([r[metric] for r in seed_rows], dtype=np.float64)
    row = {
        "name": first["name"], "method": first["method"], "depth": depth(first), "params": first["params"],
        "dataset": first.get("dataset", first.get("task", "")), "metric": metric,
        "updates": first.get("updates"), "train_seconds": _mean([r.get("train_seconds") for r in seed_rows]),
        "started_from": first.get("started_from"),
        "seeds": [{"seed": r.get("seed"), "value": r[metric], "collapsed": r.get("collapsed")} for r in seed_rows],
        "mean": round(float(values.mean()), 2),
        "sd": round(float(values.std(ddof=1)), 2) if len(values) > 1 else None,
        "collapsed": [r["collapsed"] for r in seed_rows if r.get("collapsed")] or None,
        # the metric on validation, where every seed has it (the depth pick's evidence)
        "valid_mean": _mean(valid) if None not in (valid := [r.get("valid_" + metric) for r in seed_rows]) else None,
    }
    for key in ("encoder_layers", "decoder_layers", "task", "head_params", "scored", "test_sentences",
                "sacrebleu_signature", "subset", "valid_subset", "valid_sentences"):
        if key in first:
            row[key] = first[key]
    for key in ("tok_bleu", "sentences_per_s", "examples_per_s"):
        if key in first:
            row[key] = _mean([r.get(key) for r in seed_rows])
    if "metrics" in first:
        row["metrics"] = {k: _mean([r["metrics"].get(k) for r in seed_rows]) for k in first["metrics"]}
    updates = {r.get("updates") for r in seed_rows}
    if len(updates) > 1:
        raise RowsError(f"{first['name']}: its seeds have different budgets ({sorted(map(str, updates))} updates)")
    outputs = [_read_outputs(r) for r in seed_rows]
    if all(o is not None for o in outputs):
        row["_outputs_by_seed"] = {r.get("seed"): o for r, o in zip(seed_rows, outputs)}
        row["mean_resampled"], row["ci_low"], row["ci_high"] = _interval(metric, first, outputs)
    else:
        row["ci_low"] = row["ci_high"] = None
    return row


def _mean(values):
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 2) if known else None


def _interval(metric, first, outputs):
    if metric == "sacrebleu":
        refs = outputs[0]["references"]
        idx = significance.resamples(len(refs))
        per_seed = [significance.bleu_resampled(o["hypotheses"], refs, idx) for o in outputs]
    else:
        idx = significance.resamples(len(outputs[0]["targets"]))
        per_seed = [significance.glue_resampled(first["task"], o["predictions"], o["targets"], idx)
                    for o in outputs]
    return tuple(round(v, 2) for v in significance.interval(per_seed))


def _same_depth_baselines(row, rows, kind) -> List[dict]:
    """Self-taught rows' same-depth baselines, in BASELINES' order of preference."""
    if row["method"] not in SELF_TAUGHT:
        return []
    order = {m: i for i, m in enumerate(BASELINES[kind])}
    return sorted((b for b in rows if b["method"] in order and b["depth"] == row["depth"]
                   and b["dataset"] == row["dataset"]), key=lambda b: order[b["method"]])


def _baseline_of(row, rows, kind) -> Optional[str]:
    """The same-depth baseline with the row's own number of updates, the teacher's layers without the KL
    first (else the equal-compute one, else the first there is); self-taught rows only."""
    same_depth = _same_depth_baselines(row, rows, kind)
    exact = [b for b in same_depth if b["updates"] == row["updates"]]
    fallback = [b for b in same_depth if b["method"] == EQUAL_COMPUTE[kind]] + same_depth
    chosen = (exact or fallback or [None])[0]
    return chosen["name"] if chosen else None


def _equal_compute_of(row, rows, kind) -> Optional[str]:
    """The same-depth fresh baseline with the teacher's updates plus a student's; self-taught rows only."""
    chosen = [b for b in _same_depth_baselines(row, rows, kind) if b["method"] == EQUAL_COMPUTE[kind]]
    return chosen[0]["name"] if chosen else None


def _p_value(kind, metric, seed_row, other, cache) -> Optional[float]:
    by_seed = other.get("_outputs_by_seed")
    mine = _read_outputs(seed_row)
    if not by_seed or mine is None:
        return None
    theirs = by_seed.get(seed_row.get("seed"), next(iter(by_seed.values())))
    key = (seed_row.get("_outputs"), other["name"], id(theirs))
    if key not in cache:
        if kind == "translation":
            cache[key] = significance.bleu_paired_p(mine["hypotheses"], theirs["hypotheses"], mine["references"])
        else:
            cache[key] = significance.glue_paired_p(seed_row["task"], bool(mine.get("regression")), mine, theirs)[0]
    return round(cache[key], 4)


def _test_name(kind, seed_row) -> str:
    if kind == "translation":
        return "sacreBLEU paired bootstrap (1,000 resamples, seed 12345)"
    mine = _read_outputs(seed_row) or {}
    return "paired bootstrap (1,000 resamples, seed 12345)" if mine.get("regression") else "exact McNemar (scipy)"


def public(row: dict) -> dict:
    """The row as results.json holds it (no internal fields)."""
    return {k: v for k, v in row.items() if not k.startswith("_") and k != "mean_resampled"}
