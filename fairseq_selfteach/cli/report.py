"""Results table (markdown) and plot (PNG) from the per-model JSON rows a pipeline wrote.

    python -m fairseq_selfteach.cli.report --results DIR [DIR ...] --out results.md --plot PLOT.png \
        [--title "IWSLT14 de→en"] [--metric sacrebleu]

Each row is one JSON file in DIR, written by score_translation (translation) or evaluate_glue --name
--method (classification). Rows are ordered teacher first, then by depth (deepest first) and method.
- Translation: one table; the plot shows BLEU against exact parameter counts, one marker per method,
  so self-taught students can be compared with the two baselines at equal size.
- Classification: a table task × depth (each task's GLUE metric and the exact parameters per depth),
  then one detailed table per task with all its metrics; the plot shows the metric against depth,
  one line per method and one panel per task. Several DIRs (one per task) make one table.
"""
import argparse
import glob
import json
import os
import sys

from fairseq_selfteach.core.checkpoint_io import atomic_write_text

METHOD_ORDER = ("teacher", "offline", "online", "gradual", "seqkd", "scratch", "truncated", "pruned")
METHOD_LABELS = {
    "teacher": "teacher (cross-entropy)",
    "offline": "offline self-teaching",
    "online": "online self-teaching (exit)",
    "gradual": "gradual self-teaching",
    "seqkd": "sequence-level KD",
    "scratch": "baseline: scratch, cross-entropy only",
    "truncated": "baseline: first k pretrained layers, cross-entropy only",
    "pruned": "baseline: teacher pruned, no training",
}
TRANSLATION_COLUMNS = (
    ("name", "model"), ("method", "method"), ("decoder_layers", "dec layers"),
    ("encoder_layers", "enc layers"), ("params", "parameters"), ("sacrebleu", "sacreBLEU (detok)"),
    ("tok_bleu", "tokenised BLEU"), ("sentences_per_s", "sentences/s"),
)


CLASSIFICATION_COLUMNS = (
    ("name", "model"), ("method", "method"), ("encoder_layers", "layers"), ("params", "parameters"),
)


def _depth(row):
    return row.get("decoder_layers", row.get("encoder_layers", 0))


def load_rows(results_dirs):
    rows = []
    for results_dir in [results_dirs] if isinstance(results_dirs, str) else results_dirs:
        paths = sorted(glob.glob(os.path.join(results_dir, "*.json")))
        if not paths:
            raise SystemExit(f"report: no *.json rows in {results_dir}")
        for path in paths:
            with open(path) as f:
                row = json.load(f)
            missing = [k for k in ("name", "method", "params") if k not in row]
            if missing:
                raise SystemExit(f"report: {path} has no {', '.join(missing)} (not a results row)")
            rows.append(row)
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    rows.sort(key=lambda r: (r["method"] != "teacher", -_depth(r), order.get(r["method"], len(order)),
                             r["name"], r.get("task", "")))
    return rows


def _fmt(value):
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown_table(rows, columns, title=None, notes=()):
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(h for _, h in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k, "")) for k, _ in columns) + " |")
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _pyplot():
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's root logger is at DEBUG
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def by_dataset(rows):
    """Classification rows keyed by what they were scored on: "task" becomes the dataset label (MNLI-m,
    sentiment, ...), and "task_name" keeps the GLUE task, whose metric it is."""
    return [{**r, "task_name": r["task"], "task": r.get("dataset", r["task"])} for r in rows]


def plot(rows, metric, metric_label, out_png, title=None):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = dict(zip(METHOD_ORDER, "*osD^xv"))
    labelled = set()
    for method in [m for m in METHOD_ORDER if any(r["method"] == m for r in rows)]:
        sel = [r for r in rows if r["method"] == method]
        ax.scatter([r["params"] / 1e6 for r in sel], [r[metric] for r in sel],
                   marker=markers.get(method, "o"), s=70, label=METHOD_LABELS.get(method, method))
        for r in sel:
            if r["params"] not in labelled:  # one depth label per model size, not one per method
                labelled.add(r["params"])
                ax.annotate(f"dec{r['decoder_layers']}", (r["params"] / 1e6, r[metric]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("parameters (millions, exact count)")
    ax.set_ylabel(metric_label)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, plt, out_png)


def metric_label(task, metric="glue_score"):
    from fairseq_selfteach.classification.metrics import score_label

    return score_label(task) if metric == "glue_score" else metric


def classification_tables(rows, title=None):
    """Task × depth: each task's own metric and the exact parameters per model; with one task, every
    metric of the task in the same table, with several, one table of every metric per task."""
    rows = by_dataset(rows)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    labels = {r["task"]: metric_label(r["task_name"]) for r in rows}
    heads = {r["task"]: r.get("head_params", 0) for r in rows}
    scored = {r["task"]: r["scored"] for r in rows}
    one_task = len(tasks) == 1

    def flat(r):  # the row with its metrics as columns
        return {**r, **{f"metric:{k}": v for k, v in r.get("metrics", {}).items()}}

    notes = [
        "every model scored all dev examples (" + ", ".join(f"{t}: {scored[t]}" for t in tasks)
        + ") with evaluate_glue on its exported checkpoint; metrics in percent, from scikit-learn/scipy",
        "parameters: exact count of the exported checkpoint (embeddings, the first k layers, pooler"
        + (", classification head)" if one_task else "); each task's head adds "
           + ", ".join(f"{t} {heads[t]:,}" for t in tasks) + ")"),
    ]
    if one_task:
        metric_keys = list(dict.fromkeys(k for r in rows for k in r.get("metrics", {})))
        columns = CLASSIFICATION_COLUMNS + (("glue_score", f"{tasks[0]}: {labels[tasks[0]]}"),) + tuple(
            (f"metric:{k}", k) for k in metric_keys if len(metric_keys) > 1)
        return markdown_table([flat(r) for r in rows], columns, title, notes)
    # several tasks: one row per model (method, depth), one column per task
    keys = list(dict.fromkeys((r["method"], r["encoder_layers"], r["name"]) for r in rows))
    by_key = {(r["method"], r["encoder_layers"], r["name"], r["task"]): r for r in rows}
    table = []
    for method, layers, name in keys:
        cells = {t: by_key.get((method, layers, name, t)) for t in tasks}
        first = next(c for c in cells.values() if c)
        table.append({"name": name, "method": method, "encoder_layers": layers,
                      "params": first["params"] - first.get("head_params", 0),
                      **{f"task:{t}": c["glue_score"] for t, c in cells.items() if c}})
    columns = CLASSIFICATION_COLUMNS[:3] + (("params", "parameters (without head)"),) + tuple(
        (f"task:{t}", f"{t}: {labels[t]}") for t in tasks)
    out = [markdown_table(table, columns, title, notes)]
    for task in tasks:
        sel = [flat(r) for r in rows if r["task"] == task]
        metric_keys = list(dict.fromkeys(k for r in rows if r["task"] == task for k in r.get("metrics", {})))
        out.append(markdown_table(sel, CLASSIFICATION_COLUMNS + tuple((f"metric:{k}", k) for k in metric_keys),
                                  f"{task}: every metric"))
    return "\n".join(out)


def plot_by_depth(rows, out_png, title=None):
    """The metric against depth, one line per method, one panel per task."""
    plt = _pyplot()
    rows = by_dataset(rows)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4.5), squeeze=False)
    markers = dict(zip(METHOD_ORDER, "*osD^xPv"))
    for ax, task in zip(axes[0], tasks):
        sel = [r for r in rows if r["task"] == task]
        for method in [m for m in METHOD_ORDER if any(r["method"] == m for r in sel)]:
            pts = sorted((r["encoder_layers"], r["glue_score"]) for r in sel if r["method"] == method)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers.get(method, "o"),
                    linestyle="-" if len(pts) > 1 else "none", markersize=8,
                    label=METHOD_LABELS.get(method, method))
        ax.set_xlabel("encoder layers (depth)")
        ax.set_ylabel(f"{task} {metric_label(sel[0]['task_name'])} (dev, %)")
        ax.set_xticks(sorted({r["encoder_layers"] for r in sel}))
        ax.set_title(task if len(tasks) > 1 or not title else title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, plt, out_png)


def _save(fig, plt, out_png):
    tmp = out_png + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, out_png)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, nargs="+", help="folder(s) of per-model JSON rows")
    ap.add_argument("--out", required=True, help="markdown table to write")
    ap.add_argument("--plot", required=True, help="PNG plot to write")
    ap.add_argument("--title", default=None, help="title of the table and plot")
    ap.add_argument("--metric", default="sacrebleu", help="row key plotted against parameters")
    args = ap.parse_args(argv)
    rows = load_rows(args.results)
    if any("glue_score" in r for r in rows):
        if not all("glue_score" in r and "task" in r for r in rows):
            raise SystemExit("report: classification rows (glue_score) mixed with other rows")
        atomic_write_text(args.out, classification_tables(rows, args.title))
        plot_by_depth(rows, args.plot, args.title)
        with open(args.out) as f:
            print(f.read())
        return 0
    notes = [
        "sacreBLEU (detok): hypotheses detokenised with sacremoses, scored against the raw references, "
        f"lowercased; signature `{rows[0].get('sacrebleu_signature', '')}`",
        "tokenised BLEU: Moses-tokenised, lowercased text, sacreBLEU tokenize=none (the IWSLT14 papers' BLEU)",
        f"every model decoded all {rows[0].get('test_sentences')} test sentences with plain fairseq-generate "
        "(exported checkpoints, no --user-dir); sentences/s from fairseq-generate's own timing",
        "parameters: exact count of the decoded checkpoint (tied embeddings counted once)",
    ]
    atomic_write_text(args.out, markdown_table(rows, TRANSLATION_COLUMNS, args.title, notes))
    label = {"sacrebleu": "sacreBLEU (detokenised)", "tok_bleu": "tokenised BLEU"}.get(args.metric, args.metric)
    plot(rows, args.metric, label, args.plot, args.title)
    with open(args.out) as f:
        print(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
