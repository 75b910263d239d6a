"""Reading bench/gpu_check.py's parts' outputs into its table's rows: fairseq-train's log lines,
bench_speculative.py's table, the JSON of the train part's child and of bench_decoding.py. Pure text and
JSON handling (no torch), so it is tested on fake outputs.

Each rows_PART(outputs, workdir) takes {step key: its output} (a skipped optional step's reason under
"KEY:skipped") and the part's work folder, and returns [{row, measured, compares, result}].
"""
import json
import os
import re

SPEC_SENTENCES, SPEC_ROUNDS, SPEC_DRAFTS = 20, 2, "2,4"  # what the speculative part decodes

INNER = re.compile(r"epoch \d+: +\d+ / \d+ (.*num_updates=\d+.*)$")


def train_log_summary(text):
    """fairseq-train's per-interval lines (--log-format simple): updates/s after the first interval (its
    `ups`, weighted by the updates of each interval), and the last interval's mean train loss (base 2)."""
    rows = [{k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e]+)", m.group(1))}
            for m in map(INNER.search, text.splitlines()) if m]
    if len(rows) < 2:
        raise ValueError(f"{len(rows)} logged training interval(s); need 2 (the first is warm-up)")
    spans = [b["num_updates"] - a["num_updates"] for a, b in zip(rows, rows[1:])]
    seconds = sum(n / r["ups"] for n, r in zip(spans, rows[1:]))
    last = rows[-1]
    return {"updates_per_s": sum(spans) / seconds, "loss": last["loss"], "loss_scale": last.get("loss_scale"),
            "first": int(rows[0]["num_updates"]), "last": int(last["num_updates"])}


SPEC_LINE = re.compile(r"^(spec \d+/\d+)\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+.*\s(yes|NO)$")


def speculative_summary(text):
    """[(name, ratio to plain greedy, acceptance, identical)] from bench_speculative.py's table."""
    rows = [(m.group(1), float(m.group(2)), float(m.group(3)), m.group(4) == "yes")
            for m in map(SPEC_LINE.match, text.splitlines()) if m]
    if not rows:
        raise ValueError("no `spec K/N` line in bench_speculative.py's output")
    return rows


def rows_train(outputs, workdir):
    with open(os.path.join(workdir, "updates.json")) as f:
        m = json.load(f)
    t = m["median_s"]
    how = (f"fp16: fairseq's FP16Optimizer, fp32: fairseq's Adam; medians of {m['steps']} interleaved updates "
           f"after {m['warmup']}, --max-tokens 4096, 10k vocab")
    skipped = ", ".join(f"{k} {n}" for k, n in m["overflows"].items() if n)
    note = f"; fp16 updates skipped for overflow: {skipped}" if skipped else ""

    def ratio(name):
        a, b = t[f"{name}/fp16"], t[f"{name}/fp32"]
        return f"{a / b:.2f} ({a * 1e3:.1f} ms ÷ {b * 1e3:.1f} ms){note}"

    def both(num, den):
        return "; ".join(f"{p} {t[f'{num}/{p}'] / t[f'{den}/{p}']:.3f}" for p in ("fp16", "fp32"))

    return [
        {"row": "1a", "measured": "teacher update time, fp16 ÷ fp32",
         "compares": f"6+6 transformer_iwslt_de_en, label-smoothed CE; {how}", "result": ratio("full_lsce")},
        {"row": "1b", "measured": "offline student update time, fp16 ÷ fp32",
         "compares": "6+3 student, KD from the frozen 6+6 teacher (its forward included)",
         "result": ratio("student_offline")},
        {"row": "1c", "measured": "P1: online ÷ plain update (6+6)", "compares": "each precision",
         "result": both("full_online", "full_lsce")},
        {"row": "1d", "measured": "P2: offline ÷ plain student update (6+3)", "compares": "each precision",
         "result": both("student_offline", "student_lsce")}]


def rows_bible(outputs, workdir):
    s16 = train_log_summary(outputs["fp16"])
    span = f"updates {s16['first'] + 1}-{s16['last']}"
    rows = [{"row": "2a", "measured": "Bible demo teacher, fairseq-train --fp16: updates/s, final train loss",
             "compares": f"fairseq's ups over {span} (no validation, no checkpoints); loss: mean of the "
                         f"last logged interval",
             "result": f"{s16['updates_per_s']:.1f} updates/s; loss {s16['loss']:.3f}; "
                       f"loss scale {s16['loss_scale']}"}]
    if "fp32" in outputs:
        s32 = train_log_summary(outputs["fp32"])
        result = (f"{s32['updates_per_s']:.1f} updates/s; loss {s32['loss']:.3f}; fp16 ÷ fp32 updates/s "
                  f"{s16['updates_per_s'] / s32['updates_per_s']:.2f}")
    else:
        result = outputs.get("fp32:skipped", "not run")
    rows.append({"row": "2b", "measured": "the same in float32", "compares": "same data, seed and updates",
                 "result": result})
    return rows


def rows_speculative(outputs, workdir):
    spec = speculative_summary(outputs["decode"])
    model = "Bible demo model trained online" if "train" in outputs else "random-init 6+6, synthetic data"
    result = "; ".join(f"{n}: {r:.2f}× (accepted {a:.2f})" for n, r, a, _ in spec)
    same = "yes" if all(s for *_, s in spec) else "NO"
    return [{"row": "3", "measured": "self-speculative ÷ plain greedy sentences/s, batch size 1",
             "compares": f"{model}; {SPEC_SENTENCES} sentences, medians of {SPEC_ROUNDS} rounds",
             "result": f"{result}; hypotheses identical: {same}"}]


def rows_decoding(outputs, workdir):
    with open(os.path.join(workdir, "decoding.json")) as f:
        m = json.load(f)
    s = m["summary"]
    problems = f"; {'; '.join(m['problems'])}" if m["problems"] else ""
    return [{"row": "4", "measured": "decoder-3 ÷ decoder-6 generate time",
             "compares": f"fairseq-generate --beam {m['beam']} --batch-size {m['batch_size']}, "
                         f"{s['teacher']['sentences']} synthetic sentences of forced length, "
                         f"medians of {m['repeats']} runs each",
             "result": f"{1 / m['ratio']:.2f} ({s['student']['sentences_per_s']:.0f} ÷ "
                       f"{s['teacher']['sentences_per_s']:.0f} sentences/s, student ÷ teacher){problems}"}]


ROWS = {"train": rows_train, "bible": rows_bible, "speculative": rows_speculative, "decoding": rows_decoding}
