"""The results plots (PNG, written atomically), from aggregated rows (results.rows.aggregate):
the mean over seeds with the seeds' standard deviation as error bars."""
import os

from selfteach_pipeline.results.rows import METHOD_ORDER

METHOD_LABELS = {
    "teacher": "teacher (cross-entropy)",
    "offline": "offline self-teaching",
    "online": "online self-teaching (exit)",
    "gradual": "gradual self-teaching (offline chain)",
    "online-gradual": "gradual self-teaching (one model)",
    "seqkd": "sequence-level KD",
    "ce-same-init": "baseline: teacher's first k layers, cross-entropy only",
    "scratch-same-budget": "baseline: scratch, student's budget",
    "scratch-equal-compute": "baseline: scratch, teacher's + student's updates",
    "scratch-teacher-budget": "baseline: scratch, teacher's budget",
    "truncated-same-budget": "baseline: first k pretrained layers, student's budget",
    "truncated-equal-compute": "baseline: first k pretrained layers, teacher's + student's updates",
    "truncated-teacher-budget": "baseline: first k pretrained layers, teacher's budget",
    "pruned": "baseline: teacher pruned, no training",
    "anydepth": "one model, every exit (--exit-layer)",
}
MARKERS = dict(zip(METHOD_ORDER, "*osDdPhX^<1>x2v"))


def _pyplot():
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's root logger is at DEBUG
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _methods(rows):
    return [m for m in METHOD_ORDER if any(r["method"] == m for r in rows)]


def bleu_vs_params(rows, out_png, metric_label, title=None):
    """BLEU against exact parameter counts, one marker per method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    labelled = set()
    for method in _methods(rows):
        sel = [r for r in rows if r["method"] == method]
        sel.sort(key=lambda r: r["params"])  # the anydepth exits are joined by a line
        ax.errorbar([r["params"] / 1e6 for r in sel], [r["mean"] for r in sel],
                    yerr=[r["sd"] or 0.0 for r in sel], fmt=MARKERS.get(method, "o") + ("-" * (method == "anydepth")),
                    markersize=8,
                    capsize=3, label=METHOD_LABELS.get(method, method))
        for r in sel:
            if r["params"] not in labelled:  # one depth label per model size, not one per method
                labelled.add(r["params"])
                ax.annotate(f"dec{r['depth']}", (r["params"] / 1e6, r["mean"]), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
    ax.set_xlabel("parameters (millions, exact count)")
    ax.set_ylabel(f"{metric_label} (mean ± sd over seeds)")
    _finish(fig, ax, plt, out_png, title)


def metric_vs_depth(rows, out_png, label_of, title=None):
    """The metric against depth, one line per method, one panel per dataset."""
    plt = _pyplot()
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        sel = [r for r in rows if r["dataset"] == dataset]
        for method in _methods(sel):
            pts = sorted((r["depth"], r["mean"], r["sd"] or 0.0) for r in sel if r["method"] == method)
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                        marker=MARKERS.get(method, "o"), linestyle="-" if len(pts) > 1 else "none",
                        markersize=7, capsize=3, label=METHOD_LABELS.get(method, method))
        ax.set_xlabel("encoder layers (depth)")
        ax.set_ylabel(f"{dataset} {label_of(sel[0])} (dev, %, mean ± sd over seeds)")
        ax.set_xticks(sorted({r["depth"] for r in sel}))
        ax.set_title(dataset if len(datasets) > 1 or not title else title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    _save(fig, plt, out_png)


def _finish(fig, ax, plt, out_png, title):
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    _save(fig, plt, out_png)


def _save(fig, plt, out_png):
    tmp = out_png + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, out_png)
