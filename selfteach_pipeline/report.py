"""Results table (markdown), results.json and plot (PNG) from the per-model, per-seed JSON rows a
pipeline wrote.

    python -m selfteach_pipeline.report --results DIR [DIR ...] --out results.md --plot PLOT.png \
        [--json results.json] [--title "IWSLT14 de→en"]

Each row file is one model and seed, written by score_translation (translation) or evaluate_glue
--name --method (classification); rows with one name are that model's seeds (results.rows). Every
table row states the model's budget (updates, training seconds) and what it started from, its mean
over seeds ± their standard deviation, the 95 % bootstrap interval of that mean, its same-budget
baseline and the p-values against the baseline and the teacher (results.significance), and a flag
where a seed collapsed. results.json (default: beside --out) holds the same rows with the per-seed
values. Translation: one table, the plot BLEU against exact parameter counts, and where the rows hold
a model decoded at every exit (method anydepth) a table of its exits beside the separately trained
models of each depth. Classification: a table per dataset, a task × depth overview for several, the plot
the metric against depth. --quality-floor F adds the depth pick (results.depth_pick): the shallowest
self-taught model whose validation score is at least F × the teacher's (depth_pick.json beside
results.json). It imports neither torch nor fairseq (tests/core/test_imports.py checks it).
"""
import argparse
import json
import os
import sys

from selfteach_pipeline.errors import one_line_errors
from selfteach_pipeline.files import atomic_write_text
from selfteach_pipeline.glue_metrics import score_label
from selfteach_pipeline.results import depth_pick, plots, rows as results_rows

BUDGET_COLUMNS = (("updates", "updates"), ("train_seconds", "train s"), ("started_from", "started from"))
TEST_COLUMNS = (("ci", "95 % CI"), ("baseline", "baseline (same updates)"), ("vs_baseline", "Δ, p vs baseline"),
                ("equal_compute", "equal compute"), ("vs_equal_compute", "Δ, p vs equal compute"),
                ("vs_teacher", "Δ, p vs teacher"), ("flag", "flag"))
TRANSLATION_COLUMNS = (("name", "model"), ("method", "method"), ("decoder_layers", "dec layers"),
                       ("encoder_layers", "enc layers"), ("params", "parameters")) + BUDGET_COLUMNS + (
    ("value", "sacreBLEU (detok)"),) + TEST_COLUMNS + (("tok_bleu", "tokenised BLEU"),
                                                      ("sentences_per_s", "sentences/s"))
CLASSIFICATION_COLUMNS = (("name", "model"), ("method", "method"), ("depth", "layers"),
                          ("params", "parameters")) + BUDGET_COLUMNS


def _fmt(value):
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 0.01 and value != 0 else f"{value:.2f}"
    return str(value)


def cells(row):
    """The derived cells of a table row: value (mean ± sd, n), ci, flag."""
    n = len(row["seeds"])
    value = f"{row['mean']:.2f}" + (f" ± {row['sd']:.2f} (n={n})" if n > 1 else "")
    ci = f"{row['ci_low']:.2f}–{row['ci_high']:.2f}" if row.get("ci_low") is not None else None
    collapsed = [s for s in row["seeds"] if s.get("collapsed")]
    flag = ""
    if collapsed:
        which = ", ".join(str(s["seed"]) for s in collapsed)
        flag = f"⚠ collapsed ({len(collapsed)} of {n} seeds: {which})" if n > 1 else "⚠ collapsed"
    versus = {f"vs_{against}": difference(row.get(f"delta_{against}"), row.get(field))
              for against, field in (("baseline", "p_value"), ("equal_compute", "p_value_equal_compute"),
                                     ("teacher", "p_value_teacher"))}
    return {**row, "value": value, "ci": ci, "flag": flag, **versus}


def difference(delta, p_value):
    """'+0.52, p 0.0040': a p-value is shown with the direction of the difference it tests."""
    if delta is None:
        return None
    if p_value is None:
        return f"{delta:+.2f}"
    return f"{delta:+.2f}, p " + ("< 0.0001" if p_value == 0 else _fmt(float(p_value)))


def markdown_table(rows, columns, title=None, notes=()):
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(h for _, h in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + " |")
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def common_notes(rows):
    seeds = sorted({s["seed"] for r in rows for s in r["seeds"] if s["seed"] is not None})
    several = any(len(r["seeds"]) > 1 for r in rows)
    notes = [
        "budget: the updates of the model's own training and its training seconds (fairseq's cumulative "
        "training time, mean over seeds); an online exit's budget is the whole online model's, an "
        "online-gradual row's that of its stage and the stages before it (one model); the teacher's "
        "budget is its own row's, spent once for every student that starts from it",
        "baseline (same updates): the same-depth model trained with cross-entropy only for exactly the "
        "row's number of updates, from the teacher's first k layers (ce_same_init: what the KL term adds) "
        "where there is one, else from a fresh start; equal compute: k fresh layers trained with cross-entropy "
        "for the teacher's updates plus one student's (what an offline student costs, its teacher included); "
        "Δ is the row's mean minus the other row's, its p-value from the paired test of every seed",
        f"seeds: {', '.join(map(str, seeds)) or 'none'}; the teacher is trained once"
        + ("; a cell is the mean ± standard deviation over the seeds (n), the 95 % CI that of the seed mean "
           "(every bootstrap resample scored for every seed, then averaged), and each p-value the largest "
           "over the seeds, each seed tested against the same seed of the other row, so a row counts as "
           "better only when every seed is" if several else "; one seed per row, so no spread is shown"),
        "⚠ collapsed: the model (or one of its seeds) is stuck at one answer on the scored set; see "
        "results.json's seeds[].collapsed for the reason. A shallow model trained at too low a learning rate "
        "does this on small tasks: `--sweep` with student_lr in its grid chooses the students' and the "
        "baselines' rates on held-out data",
    ]
    return notes


def anydepth_section(rows):
    """One model at every exit (method anydepth) beside the separately trained models of each depth."""
    exits = sorted((r for r in rows if r["method"] == "anydepth"), key=lambda r: r["depth"])
    if not exits:
        return ""
    full = exits[-1]
    table = []
    for r in exits:
        others = [o for o in rows if o["depth"] == r["depth"] and o["method"] != "anydepth"]
        speed_up = (r["sentences_per_s"] / full["sentences_per_s"]) if r.get("sentences_per_s") and \
            full.get("sentences_per_s") else None
        table.append({**cells(r), "exit": r["depth"], "valid": r.get("valid_mean"),
                      "speed_up": f"{speed_up:.2f}×" if speed_up else None,
                      "others": "; ".join(f"{o['name']} {o['mean']:.2f}" for o in others) or "–"})
    columns = (("exit", "exit"), ("name", "model"), ("params", "parameters"), ("updates", "updates"),
               ("value", "sacreBLEU (test)"), ("ci", "95 % CI"), ("valid", "sacreBLEU (valid)"),
               ("sentences_per_s", "sentences/s"), ("speed_up", f"speed vs exit {full['depth']}"),
               ("baseline", "baseline"), ("vs_baseline", "Δ, p vs baseline"),
               ("others", "trained separately at this depth (sacreBLEU, test)"))
    notes = [f"one {full['depth']}-layer model trained once (seed {full['seeds'][0]['seed']}) with every "
             "decoder exit a student of the top (--student-exits all) for the teacher's budget, decoded "
             "at exit K from its training checkpoint with fairseq-generate --exit-layer K (no export)",
             f"speed: fairseq-generate's sentences/s, the exits one after another in one process; exit "
             f"{full['depth']} is the whole model decoded the same way",
             "baseline: the same-depth baseline with the same number of updates where the pipeline trains "
             "one, else the equal-compute one (student depths only)"]
    return markdown_table(table, columns, "One model, every exit (anydepth)", notes)


def translation_report(rows, title):
    rows, all_rows = [r for r in rows if r["method"] != "anydepth"], rows
    first = rows[0]
    notes = [
        "sacreBLEU (detok): hypotheses detokenised with sacremoses, scored against the raw references, "
        f"lowercased; signature `{first.get('sacrebleu_signature', '')}`",
        "95 % CI and p-values: sacreBLEU's paired bootstrap resampling (sacrebleu.significance.PairedTest, "
        "1,000 resamples, seed 12345); the CI is sacreBLEU's bootstrap mean ± half the central 95 % range",
        "tokenised BLEU: Moses-tokenised, lowercased text, sacreBLEU tokenize=none (the IWSLT14 papers' BLEU)",
        f"every model decoded all {first.get('test_sentences')} test sentences with plain fairseq-generate "
        "(exported checkpoints, no --user-dir); sentences/s from fairseq-generate's own timing",
        "parameters: exact count of the decoded checkpoint (tied embeddings counted once)",
    ] + common_notes(rows)
    text = markdown_table([cells(r) for r in rows], TRANSLATION_COLUMNS, title, notes)
    section = anydepth_section(all_rows)
    return text + ("\n" + section if section else "")


def classification_report(rows, title):
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    notes = [
        "every model scored all dev examples (" + ", ".join(
            f"{d}: {next(r['scored'] for r in rows if r['dataset'] == d)}" for d in datasets)
        + ") with evaluate_glue on its exported checkpoint; metrics in percent, from scikit-learn/scipy",
        "95 % CI: bootstrap over the dev examples (1,000 resamples, seed 12345; sacreBLEU's interval rule); "
        "p-values: " + ", ".join(sorted({r["p_test"] for r in rows})) + " on the same dev examples",
        "parameters: exact count of the exported checkpoint (embeddings, the first k layers, pooler, "
        "classification head)",
    ] + common_notes(rows)
    out = []
    if len(datasets) > 1:  # overview: one row per model, one column per dataset
        keys = list(dict.fromkeys((r["name"], r["method"], r["depth"]) for r in rows))
        by = {(r["name"], r["dataset"]): cells(r) for r in rows}
        table = [{"name": n, "method": m, "depth": d,
                  **{f"d:{ds}": by[(n, ds)]["value"] for ds in datasets if (n, ds) in by}} for n, m, d in keys]
        columns = CLASSIFICATION_COLUMNS[:3] + tuple(
            (f"d:{ds}", f"{ds}: {score_label(next(r['task'] for r in rows if r['dataset'] == ds))}")
            for ds in datasets)
        out.append(markdown_table(table, columns, title))
    for dataset in datasets:
        sel = [cells(r) for r in rows if r["dataset"] == dataset]
        metric_keys = list(dict.fromkeys(k for r in sel for k in (r.get("metrics") or {})))
        flat = [{**r, **{f"m:{k}": v for k, v in (r.get("metrics") or {}).items()}} for r in sel]
        columns = CLASSIFICATION_COLUMNS + (("value", f"{dataset}: {score_label(sel[0]['task'])}"),) \
            + TEST_COLUMNS + tuple((f"m:{k}", k) for k in metric_keys if len(metric_keys) > 1)
        heading = title if len(datasets) == 1 else f"{dataset}: every model"
        out.append(markdown_table(flat, columns, heading, notes if dataset == datasets[-1] else ()))
    return "\n".join(out)


def sweep_section(path):
    """The sweep's table (a pipeline's --sweep: settings_table.sweep_pick's JSON), and the baselines' beside it."""
    with open(path, encoding="utf-8") as f:
        points = json.load(f)
    keys = list(points[0]["options"])
    columns = [(f"o:{k}", k) for k in keys] + [("value", f"{points[0]['metric']} on validation"),
                                               ("picked", "picked")]
    table = [{**{f"o:{k}": p["options"][k] for k in keys}, "value": p["value"],
              "picked": "✔" if p["picked"] else ""} for p in points]
    pick = next(p for p in points if p["picked"])
    notes = [f"each point trained the first offline student once (first seed) and was scored on the "
             f"validation set; the pick ({', '.join(f'{k} {v}' for k, v in pick['options'].items())}) is "
             f"what every student and online model above was trained with"
             + (" (its student_lr: the students' rate; the online models keep the teacher's)"
                if "student_lr" in pick["options"] else "") + "; the test set played no part"]
    section = markdown_table(table, columns, "Distillation options chosen on validation (--sweep)", notes)
    baselines = os.path.join(os.path.dirname(path), "sweep_baselines.json")
    if os.path.exists(baselines):  # the same-budget baseline swept over the students' rates (student_lr)
        with open(baselines, encoding="utf-8") as f:
            points = json.load(f)
        table = [{"o:lr": p["options"]["student_lr"], "value": p["value"], "picked": "✔" if p["picked"] else ""}
                 for p in points]
        columns = [("o:lr", "student_lr"), ("value", f"{points[0]['metric']} on validation"), ("picked", "picked")]
        section += "\n" + markdown_table(table, columns, "The baselines' learning rate, chosen on validation", [
            "each rate trained the same-budget baseline once (first seed); the pick is the rate of every "
            "same-budget baseline above (and, for classification, every equal-compute one)"])
    return section


def pick_sections(rows, floor, json_path):
    """The depth pick of each dataset as markdown; the picks written to json_path."""
    translation = results_rows.family(rows) == "translation"
    picks, text = [], []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        choice = depth_pick.pick([r for r in rows if r["dataset"] == dataset], floor)
        if choice is None:
            text.append(f"## Picking a depth\n\nNo pick{f' for {dataset}' if dataset else ''}: the teacher "
                        "has no positive validation score in these rows, so there is no fraction of it to "
                        "reach.\n")
            continue
        picks.append(choice)
        if translation:
            text.append(depth_pick.markdown(choice, "sacreBLEU", "sentences/s"))
        else:
            task = next(r["task"] for r in rows if r["dataset"] == dataset)
            text.append(depth_pick.markdown(choice, score_label(task), "examples/s", reported="dev"))
    atomic_write_text(json_path, json.dumps(picks, indent=1) + "\n")
    return "\n".join(text)


def main(argv=None):
    return one_line_errors(write_report, argv)  # a user's error (a full disk) is one line, no traceback


def write_report(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, nargs="+", help="folder(s) of per-model, per-seed JSON rows")
    ap.add_argument("--out", required=True, help="markdown table to write")
    ap.add_argument("--plot", required=True, help="PNG plot to write")
    ap.add_argument("--json", default=None, help="machine-readable rows to write (default: results.json beside --out)")
    ap.add_argument("--title", default=None, help="title of the table and plot")
    ap.add_argument("--sweep", default=None, help="a pipeline's sweep.json: its table is added to --out")
    ap.add_argument("--quality-floor", type=float, default=None, metavar="F",
                    help="name the shallowest self-taught model whose validation score is at least F × the "
                         "teacher's (0 < F ≤ 1), with its test score, parameters and speed-up")
    args = ap.parse_args(argv)
    if args.quality_floor is not None and not 0 < args.quality_floor <= 1:
        ap.error(f"--quality-floor {args.quality_floor}: a fraction of the teacher's score, 0 < F <= 1")
    try:
        rows = results_rows.aggregate(results_rows.load(args.results))
    except (results_rows.RowsError, OSError, KeyError, ValueError) as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    if results_rows.family(rows) == "classification":
        text = classification_report(rows, args.title)
        plots.metric_vs_depth(rows, args.plot, lambda r: score_label(r["task"]), args.title)
    else:
        text = translation_report(rows, args.title)
        plots.bleu_vs_params(rows, args.plot, "sacreBLEU (detokenised)", args.title)
    if args.sweep:
        try:
            text += "\n" + sweep_section(args.sweep)
        except (OSError, ValueError, KeyError, IndexError, StopIteration) as e:
            print(f"report: error: --sweep {args.sweep}: {e}", file=sys.stderr)
            return 2
    json_path = args.json or os.path.join(os.path.dirname(os.path.abspath(args.out)), "results.json")
    if args.quality_floor is not None:
        text += "\n" + pick_sections(rows, args.quality_floor, os.path.join(os.path.dirname(json_path),
                                                                            "depth_pick.json"))
    atomic_write_text(json_path, json.dumps([results_rows.public(r) for r in rows], indent=1) + "\n")
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
