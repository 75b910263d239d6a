"""Results table (markdown) and plot (PNG) from the per-model JSON rows a pipeline wrote.

    python -m fairseq_selfteach.report --results DIR --out results.md --plot bleu_vs_params.png \
        [--title "IWSLT14 de→en"] [--metric sacrebleu]

Each row is one JSON file in DIR (written by score_translation). Rows are ordered teacher first, then
by depth (deepest first) and method. The plot shows the metric against exact parameter counts, one
marker per method, so self-taught students can be compared with the two baselines at equal size.
"""
import argparse
import glob
import json
import os
import sys

from fairseq_selfteach.checkpoints import atomic_write_text

METHOD_ORDER = ("teacher", "offline", "online", "gradual", "seqkd", "scratch", "pruned")
METHOD_LABELS = {
    "teacher": "teacher (cross-entropy)",
    "offline": "offline self-teaching",
    "online": "online self-teaching (exit)",
    "gradual": "gradual self-teaching",
    "seqkd": "sequence-level KD",
    "scratch": "baseline: scratch, cross-entropy only",
    "pruned": "baseline: teacher pruned, no training",
}
TRANSLATION_COLUMNS = (
    ("name", "model"), ("method", "method"), ("decoder_layers", "dec layers"),
    ("encoder_layers", "enc layers"), ("params", "parameters"), ("sacrebleu", "sacreBLEU (detok)"),
    ("tok_bleu", "tokenised BLEU"), ("sentences_per_s", "sentences/s"),
)


def load_rows(results_dir):
    rows = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path) as f:
            rows.append(json.load(f))
    if not rows:
        raise SystemExit(f"report: no *.json rows in {results_dir}")
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    rows.sort(key=lambda r: (r["method"] != "teacher", -r.get("decoder_layers", 0),
                             order.get(r["method"], len(order)), r["name"]))
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


def plot(rows, metric, metric_label, out_png, title=None):
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's root logger is at DEBUG
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

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
    tmp = out_png + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, out_png)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="folder of per-model JSON rows")
    ap.add_argument("--out", required=True, help="markdown table to write")
    ap.add_argument("--plot", required=True, help="PNG plot to write")
    ap.add_argument("--title", default=None, help="title of the table and plot")
    ap.add_argument("--metric", default="sacrebleu", help="row key plotted against parameters")
    args = ap.parse_args(argv)
    rows = load_rows(args.results)
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
