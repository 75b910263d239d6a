"""scripts/iwslt14.sh end to end (selfteach_pipeline's translation plan through its local runner): the
IWSLT14 data path on an archive in the real layout, and the cut-down offline demo (bible-ci) with every
stage, resume and the results table."""
import glob
import json
import os
import re
import shutil
import signal
import subprocess

import numpy as np
import pytest
import sacrebleu
import torch
from sacrebleu.significance import PairedTest
from sacremoses import MosesDetokenizer

from tests.helpers import REPO, kill_at, run, weight_difference
from tests.pipelines.test_iwslt14_download import N_TEST, N_TRAIN, make_archive

SCRIPT = os.path.join(REPO, "scripts", "iwslt14.sh")
STARTED = re.compile(r"^pipeline: (\S+) started", re.M)  # the runner's line as a stage starts


def pipeline(*args, check=True):
    return run(["bash", SCRIPT] + [str(a) for a in args], check=check)


def lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def test_iwslt14_data_path_from_local_archive(tmp_path):
    archive = tmp_path / "de-en.tgz"
    make_archive(str(archive))
    out = tmp_path / "run"
    p = pipeline("de", "--archive", archive, "--out", out, "--only-data")
    assert "data ready" in p.stdout
    prep = out / "data" / "prep"
    splits = (prep / "SPLITS.txt").read_text()
    # every test segment is kept (never cleaned), valid is every 23rd cleaned train pair
    test_de, test_en = lines(prep / "tok" / "test.de"), lines(prep / "tok" / "test.en")
    assert len(test_de) == len(test_en) == N_TEST
    assert f"test\t{N_TEST} pairs" in splits
    n_train, n_valid = (len(lines(prep / "tok" / f"{s}.de")) for s in ("train", "valid"))
    assert n_valid == (n_train + n_valid) // 23 and n_train + n_valid <= N_TRAIN
    # Moses tokenisation and lowercasing happened; the raw reference keeps the original text
    assert all(t == t.lower() for t in test_en)
    assert lines(prep / "ref" / "test.en") == lines(out / "data" / "raw" / "test.en")
    # the raw valid references are the valid pairs' targets before tokenisation (one per line, in order)
    from sacremoses import MosesTokenizer
    mt = MosesTokenizer(lang="en")
    valid_raw = lines(prep / "ref" / "valid.en")
    assert [mt.tokenize(r, escape=True, return_str=True).lower() for r in valid_raw] == \
        lines(prep / "tok" / "valid.en")
    # joined dictionary, binarised splits, BPE codes
    assert (prep / "bin" / "dict.de.txt").read_text() == (prep / "bin" / "dict.en.txt").read_text()
    for split in ("train", "valid", "test"):
        assert (prep / "bin" / f"{split}.de-en.de.bin").exists()
    assert (prep / "bpe" / "codes").exists()
    # a second run starts neither stage
    p = pipeline("de", "--archive", archive, "--out", out, "--only-data")
    assert "data ready" in p.stdout and not STARTED.findall(p.stdout)


def test_unknown_setting_is_named(tmp_path):
    p = pipeline("xx", "--out", tmp_path, check=False)
    assert p.returncode != 0
    assert "unknown setting xx" in p.stderr and "translation_settings.tsv" in p.stderr


@pytest.mark.parametrize("args,words", [
    (["--seeds", "1,two"], "error: --seeds takes whole numbers, e.g. 1,2,3 (not '1,two')"),
    (["--sweep-grid", "kd_alpha=2"], "error: sweep: kd_alpha='2' is not a valid value"),
    (["--quality-floor", "1.5"], "error: --quality-floor takes a fraction of the teacher's validation "
                                 "score, 0 < F <= 1, e.g. 0.97 (not '1.5')"),
])
def test_bad_options_are_refused_in_one_line_before_any_work(args, words, tmp_path):
    p = pipeline("bible-ci", "--out", tmp_path / "run", *args, check=False)
    assert p.returncode == 2 and p.stderr == words + "\n", p.stderr
    assert not (tmp_path / "run").exists()


def test_sentencepiece_option(tmp_path):
    archive = tmp_path / "de-en.tgz"
    make_archive(str(archive))
    raw = tmp_path / "raw"
    run(["python", os.path.join(REPO, "preprocess", "iwslt14.py"), "--src", "de", "--archive", archive,
         "--out", raw])
    out = tmp_path / "prep"
    run(["python", os.path.join(REPO, "preprocess", "prepare_translation.py"), "--raw", raw / "raw",
         "--src", "de", "--out", out, "--bpe", "sentencepiece", "--bpe-merges", 120, "--workers", 1])
    assert (out / "bpe" / "spm.model").exists() and (out / "bin" / "dict.de.txt").exists()
    assert any("▁" in line for line in lines(out / "bpe" / "train.en"))


# bible-ci with the sweep (its grid: kd_alpha 0.5, 0.9), a teacher that stops on its valid loss, and
# the students of frozen teachers reading them from caches
CI_ARGS = ("--cpu", "--sweep", "--teacher-cache")


@pytest.fixture(scope="module")
def bible_ci(tmp_path_factory):
    out = tmp_path_factory.mktemp("bible_ci")
    p = pipeline("bible-ci", "--out", out, *CI_ARGS)
    return out, p.stdout + p.stderr


SEEDS = (1, 2)  # bible-ci's seeds (translation_settings.tsv)
PER_SEED = {"offline_dec1": "offline", "online_dec1": "online", "gradual_dec2": "gradual",
            "gradual_dec1": "gradual", "scratch_same_budget_dec1": "scratch-same-budget",
            "scratch_equal_compute_dec1": "scratch-equal-compute", "ce_same_init_dec1": "ce-same-init",
            "online_gradual_dec2": "online-gradual", "online_gradual_dec1": "online-gradual",
            "online_gradual_from_teacher_dec2": "online-gradual", "online_gradual_from_teacher_dec1": "online-gradual"}
ANYDEPTH = {f"anydepth_exit{k}": "anydepth" for k in (1, 2, 3)}  # one model (seed 1), every exit
EXPECTED_ROWS = {"teacher_dec3": "teacher", "pruned_dec1": "pruned",
                 **{f"{name}_s{s}": method for name, method in PER_SEED.items() for s in SEEDS},
                 **{f"{name}_s1": method for name, method in ANYDEPTH.items()}}
# the rows decoded on the valid set too: the depth pick's candidates and the teacher (not the baselines)
VALID_DECODED = ("teacher", "offline", "online", "gradual", "online-gradual", "anydepth")
TEACHER_UPDATES, STUDENT_UPDATES = 100, 40  # bible-ci's teacher_max_update, student_max_update
EQUAL_COMPUTE = TEACHER_UPDATES + STUDENT_UPDATES


def detok_hypotheses(path, n):
    md = MosesDetokenizer(lang="en")
    hyps = {}
    for line in lines(path):
        if line.startswith("H-"):
            sid, _, text = line[2:].split("\t", 2)
            hyps[int(sid)] = md.detokenize(text.split())
    return [hyps[i] for i in range(n)]


def last_update(log):
    return int(re.findall(r"num_updates[ =](\d+)", log.read_text())[-1])


@pytest.mark.slow
def test_bible_ci_table_rows_and_scores(bible_ci):
    out, _ = bible_ci
    rows = {os.path.basename(p)[:-5]: json.load(open(p)) for p in glob.glob(str(out / "results" / "*.json"))}
    assert {k: r["method"] for k, r in rows.items()} == EXPECTED_ROWS
    n_test = len(lines(out / "data" / "raw" / "test.en"))
    png = (out / "bleu_vs_params.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    refs = lines(out / "data" / "raw" / "test.en")
    for stem, r in rows.items():
        assert r["test_sentences"] == r["sentences"] == n_test  # every test sentence decoded and scored
        assert "case:lc" in r["sacrebleu_signature"] and "tok:13a" in r["sacrebleu_signature"]
        # the score recomputed from the generate log with sacreBLEU directly
        hyps = detok_hypotheses(out / "generate" / f"{stem}.txt", n_test)
        score = sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score
        assert abs(score - r["sacrebleu"]) < 0.01, stem
        assert r["sentences_per_s"] > 0
        assert r["seed"] == (None if r["method"] == "pruned" else 1 if r["method"] == "teacher" else int(stem[-1]))
    # exact parameters: same depth, same count, whatever the method; fewer layers, fewer parameters
    depth1 = {rows[k]["params"] for k in rows if "_dec1" in k or "_exit1" in k}
    assert len(depth1) == 1
    assert rows["teacher_dec3"]["params"] > rows["gradual_dec2_s1"]["params"] > depth1.pop()
    assert rows["anydepth_exit3_s1"]["params"] == rows["teacher_dec3"]["params"]
    assert rows["anydepth_exit2_s1"]["params"] == rows["gradual_dec2_s1"]["params"]
    # the candidates of the depth pick were scored on every valid sentence, the baselines were not
    valid_refs = lines(out / "data" / "prep" / "ref" / "valid.en")
    for stem, r in rows.items():
        if r["method"] not in VALID_DECODED:
            assert "valid_sacrebleu" not in r, stem
            continue
        hyps = detok_hypotheses(out / "generate" / f"{stem}.valid.txt", len(valid_refs))
        assert r["valid_sentences"] == len(valid_refs)
        assert abs(sacrebleu.corpus_bleu(hyps, [valid_refs], lowercase=True).score - r["valid_sacrebleu"]) < 0.01


@pytest.mark.slow
def test_bible_ci_budgets_are_stated_and_equal(bible_ci):
    out, _ = bible_ci
    rows = {os.path.basename(p)[:-5]: json.load(open(p)) for p in glob.glob(str(out / "results" / "*.json"))}
    for stem, r in rows.items():
        expected = {"teacher": TEACHER_UPDATES, "pruned": 0, "online": TEACHER_UPDATES, "anydepth": TEACHER_UPDATES,
                    "scratch-equal-compute": EQUAL_COMPUTE}.get(r["method"], STUDENT_UPDATES)
        if r["method"] == "online-gradual" and "from_teacher" in stem:  # each stage the students' budget
            expected = STUDENT_UPDATES
        elif r["method"] == "online-gradual":  # two stages share the teacher's budget; the record adds them up
            expected = TEACHER_UPDATES // 2 if "_dec2" in stem else TEACHER_UPDATES
        assert r["updates"] == expected, stem
        assert r["started_from"] and (r["train_seconds"] > 0) == (r["method"] != "pruned"), stem
    # the same-budget baseline trained exactly as many updates as the students (fairseq's own log)
    for s in SEEDS:
        assert last_update(out / "logs" / f"scratch_same_budget_dec1_s{s}.train.log") == STUDENT_UPDATES
        assert last_update(out / "logs" / f"offline_dec1_s{s}.train.log") == STUDENT_UPDATES
        assert last_update(out / "logs" / f"ce_same_init_dec1_s{s}.train.log") == STUDENT_UPDATES
        assert last_update(out / "logs" / f"scratch_equal_compute_dec1_s{s}.train.log") == EQUAL_COMPUTE


@pytest.mark.slow
def test_bible_ci_results_json_intervals_and_p_values(bible_ci):
    out, _ = bible_ci
    table = (out / "results.md").read_text()
    results = {r["name"]: r for r in json.loads((out / "results.json").read_text())}
    assert set(results) == {"teacher_dec3", "pruned_dec1", *PER_SEED, *ANYDEPTH}
    n_test = len(lines(out / "data" / "raw" / "test.en"))
    refs = lines(out / "data" / "raw" / "test.en")
    for name, r in results.items():
        if r["method"] == "anydepth":  # the anydepth table, not the main one
            assert f"| {r['depth']} | {name} |" in table and f"| {name} | anydepth | {r['depth']} |" not in table
        else:
            assert f"| {name} | {r['method']} |" in table
        assert len(r["seeds"]) == (1 if r["method"] in ("teacher", "pruned", "anydepth") else len(SEEDS))
        assert r["metric"] == "sacrebleu" and r["updates"] is not None and r["depth"] >= 1
        assert r["ci_low"] <= r["ci_high"] and r["mean"] == pytest.approx(
            np.mean([s["value"] for s in r["seeds"]]), abs=0.01)
        if r["method"] in ("offline", "gradual", "seqkd") and r["depth"] == 1:
            assert r["baseline"] == "ce_same_init_dec1" and 0 < r["p_value"] <= 1, name  # without the KL
        if r["method"] in ("online", "online-gradual") and r["depth"] == 1 and "from_teacher" not in name:
            assert r["baseline"] == "scratch_equal_compute_dec1"  # no baseline has the teacher's budget
        if "from_teacher" in name and r["depth"] == 1:
            assert r["baseline"] == "ce_same_init_dec1"  # its stage has the students' budget
        if r["method"] in ("offline", "online", "gradual", "online-gradual") and r["depth"] == 1:
            assert r["equal_compute"] == "scratch_equal_compute_dec1" and 0 < r["p_value_equal_compute"] <= 1
            assert r["delta_equal_compute"] == pytest.approx(r["mean"] - results["scratch_equal_compute_dec1"]["mean"],
                                                             abs=0.011)
        if name != "teacher_dec3":
            assert r["teacher"] == "teacher_dec3" and 0 < r["p_value_teacher"] <= 1
    # the p-values are sacreBLEU's paired bootstrap, seed against same seed, the row showing the largest
    off = results["offline_dec1"]
    expected = []
    for s in SEEDS:
        _, scores = PairedTest(
            [("b", detok_hypotheses(out / "generate" / f"ce_same_init_dec1_s{s}.txt", n_test)),
             ("s", detok_hypotheses(out / "generate" / f"offline_dec1_s{s}.txt", n_test))],
            {"BLEU": sacrebleu.metrics.BLEU(lowercase=True)}, [refs], test_type="bs", n_samples=1000)()
        expected.append(round(scores["BLEU"][1].p_value, 4))
    assert [s["p_value"] for s in off["seeds"]] == expected and off["p_value"] == max(expected)
    assert "(n=2)" in table and "largest over the seeds" in table


@pytest.mark.slow
def test_bible_ci_sweep_picks_on_valid(bible_ci):
    """--sweep: one offline student per grid point, each scored by sacreBLEU on every valid sentence
    (never on test); the best point is picked and every student is trained with it."""
    out, log = bible_ci
    points = json.loads((out / "sweep.json").read_text())
    assert [p["options"] for p in points] == [{"kd_alpha": "0.5"}, {"kd_alpha": "0.9"}]
    valid_refs = lines(out / "data" / "prep" / "ref" / "valid.en")
    assert len(valid_refs) == len(lines(out / "data" / "prep" / "tok" / "valid.en")) > 0
    for p in points:
        stem = f"sweep_{p['point']}"
        hyps = detok_hypotheses(out / "generate" / f"{stem}.valid.txt", len(valid_refs))
        assert p["value"] == pytest.approx(
            sacrebleu.corpus_bleu(hyps, [valid_refs], lowercase=True).score, abs=0.01)
        cfg = torch.load(out / "models" / stem / "checkpoint_last.pt", weights_only=False)["cfg"]
        assert cfg["criterion"]["kd_alpha"] == float(p["options"]["kd_alpha"])
    picked = [p for p in points if p["picked"]]
    assert len(picked) == 1 and picked[0]["value"] == max(p["value"] for p in points)
    alpha = float(picked[0]["options"]["kd_alpha"])
    for name in ("offline_dec1_s1", "gradual_dec2_s2", "online_s1", "anydepth_s1"):
        cfg = torch.load(out / "models" / name / "checkpoint_last.pt", weights_only=False)["cfg"]
        assert cfg["criterion"]["kd_alpha"] == alpha, name
    assert f"sweep picked {picked[0]['point']}" in log
    assert "Distillation options chosen on validation" in (out / "results.md").read_text()
    # the teacher stopped on its valid loss or at its cap, and the teacher-budget rows got its updates
    assert f"the teacher stopped after {TEACHER_UPDATES} updates" in log


@pytest.mark.slow
def test_bible_ci_anydepth_table_and_depth_pick(bible_ci):
    """anydepth: one 3-layer model trained with every exit, decoded at each exit from its training
    checkpoint (--exit-layer K, no export), beside the separately trained models; and the depth pick:
    the shallowest self-taught model whose valid sacreBLEU is at least 0.97 × the teacher's, recomputed
    here from the per-seed rows."""
    out, log = bible_ci
    cfg = torch.load(out / "models" / "anydepth_s1" / "checkpoint_last.pt", weights_only=False)["cfg"]
    assert cfg["criterion"]["student_exits"] == "all" and cfg["model"].decoder_layers == 3
    assert not list((out / "models").glob("anydepth*.pt"))  # decoded without exporting
    for k in (1, 2, 3):
        gen = (out / "generate" / f"anydepth_exit{k}_s1.txt").read_text()
        assert f"'exit_layer': {k}" in gen and "'user_dir': " in gen
    assert "exits 1-3 with fairseq-generate --exit-layer K" in log
    table = (out / "results.md").read_text()
    section = table[table.index("## One model, every exit (anydepth)"):]
    assert "| 1 | anydepth_exit1 |" in section and "speed vs exit 3" in section
    assert "offline_dec1 " in section.split("| 1 | anydepth_exit1 |")[1].split("\n")[0]
    results = {r["name"]: r for r in json.loads((out / "results.json").read_text())}
    assert results["anydepth_exit1"]["baseline"] == "scratch_equal_compute_dec1"  # none has its updates
    # the pick, recomputed from the per-seed rows: mean valid sacreBLEU over seeds, floor 0.97
    per_seed = [json.load(open(p)) for p in glob.glob(str(out / "results" / "*.json"))]
    valid = {}
    for r in per_seed:
        valid.setdefault((r["name"], r["method"], r["decoder_layers"]), []).append(r.get("valid_sacrebleu"))
    teacher_valid = valid[("teacher_dec3", "teacher", 3)][0]
    candidates = {key: np.mean(v) for key, v in valid.items()
                  if key[1] in VALID_DECODED and key[1] != "teacher"}
    meeting = [key for key, v in candidates.items() if round(v, 2) >= 0.97 * teacher_valid]
    (pick,) = json.loads((out / "depth_pick.json").read_text())
    assert pick["floor"] == 0.97 and pick["teacher_valid"] == teacher_valid
    if meeting:
        best = min(meeting, key=lambda key: (key[2], -candidates[key]))
        assert pick["met"] and (pick["name"], pick["depth"]) == (best[0], best[2])
        assert pick["valid"] == pytest.approx(candidates[best], abs=0.01)
        assert f"**Pick: {pick['name']}**" in table
    else:
        assert not pick["met"] and pick["name"] == "teacher_dec3"
        assert "No self-taught model meets the floor" in table
    assert pick["test_mean"] == results[pick["name"]]["mean"] and pick["params"] == results[pick["name"]]["params"]
    assert pick["speed_up"] == pytest.approx(
        results[pick["name"]]["sentences_per_s"] / results["teacher_dec3"]["sentences_per_s"], abs=0.01)
    assert [d["depth"] for d in pick["best_per_depth"]] == [1, 2, 3]


@pytest.mark.slow
def test_bible_ci_students_read_their_teachers_from_caches(bible_ci):
    """--teacher-cache: one cache per frozen teacher (the teacher; each seed's gradual stage that teaches
    the next), each built once; the offline, gradual and sweep students train from theirs."""
    out, log = bible_ci
    assert "--teacher-cache: the offline, gradual and sweep students read their teacher's top 8 logits" in log
    assert sorted(os.listdir(out / "caches")) == ["gradual_dec2_s1", "gradual_dec2_s2", "teacher"]
    assert sorted(n for n in STARTED.findall(log) if n.startswith("cache_")) == [
        "cache_gradual_dec2_s1", "cache_gradual_dec2_s2", "cache_teacher"]  # each built once
    for cache in os.listdir(out / "caches"):
        meta = json.loads((out / "caches" / cache / "meta.json").read_text())
        assert meta["k"] == 8 and meta["kind"] == "top_k" and meta["split"] == "train"
    sweeps = [f.name for f in (out / "models").iterdir() if f.name.startswith("sweep_") and f.is_dir()]
    uses = {"offline_dec1_s1": "teacher", "gradual_dec2_s2": "teacher", "gradual_dec1_s2": "gradual_dec2_s2",
            **{name: "teacher" for name in sweeps}}
    assert len(sweeps) == 2
    for name, cache in uses.items():
        last = torch.load(out / "models" / name / "checkpoint_last.pt", weights_only=False)
        assert last["cfg"]["task"]["teacher_cache"] == str(out / "caches" / cache), name
    for name in ("online_s1", "scratch_same_budget_dec1_s1", "anydepth_s1"):
        cfg = torch.load(out / "models" / name / "checkpoint_last.pt", weights_only=False)["cfg"]
        assert not cfg["task"].get("teacher_cache"), name


@pytest.mark.slow
def test_bible_ci_models_are_what_they_claim(bible_ci):
    out, _ = bible_ci
    teacher = torch.load(out / "models" / "teacher_dec3.pt", weights_only=True)["model"]
    pruned = torch.load(out / "models" / "pruned_dec1.pt", weights_only=True)["model"]
    # the pruned baseline is the teacher's first decoder layer, untouched
    assert set(pruned) < set(teacher)
    assert all(torch.equal(pruned[k], teacher[k]) for k in pruned)
    # the offline student started from the same weights and was then trained: it moved
    offline = torch.load(out / "models" / "offline_dec1_s1.pt", weights_only=True)["model"]
    assert set(offline) == set(pruned)
    assert not torch.equal(offline["decoder.layers.0.fc1.weight"], pruned["decoder.layers.0.fc1.weight"])
    # the teacher learned: validation loss went down
    valid = [float(m) for m in re.findall(r"valid on 'valid' subset \| loss ([\d.]+)",
                                          (out / "logs" / "teacher.train.log").read_text())]
    assert len(valid) >= 2 and valid[-1] < valid[0]


def without_timings(value):
    """A results record less what measures time (training and decoding seconds, speeds)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if "seconds" not in k and not k.endswith("per_s")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def killed_pipeline(out, where, said):
    """The pipeline run again, its whole process group killed (SIGKILL) when the call WHERE returns; its
    stdout is appended to the list SAID. Returns the stages it started."""
    p = subprocess.run(["bash", SCRIPT, "bible-ci", "--out", str(out), *CI_ARGS], capture_output=True, text=True,
                       env=dict(os.environ, **kill_at(where, "group")), start_new_session=True, timeout=900)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    said.append(p.stdout)
    return STARTED.findall(p.stdout)


@pytest.mark.slow
def test_bible_ci_killed_anywhere_and_run_again_ends_as_the_uninterrupted_run(bible_ci, tmp_path):
    """kill -9 of the whole pipeline at points the test chooses, each time followed by the same command:
    during preprocessing (fairseq-preprocess), during a teacher-cache build, in the middle of an epoch of
    a stage of the offline chain and of the online-gradual walk, and during decoding. Nothing half-made
    is taken for done, each run redoes only what had not finished, and the end is the uninterrupted
    run's: the same binarised data and cache, final checkpoints with equal weights and the same results
    (everything but the seconds) and table. Beside it, a training that had finished before its marker
    was written is not run again, and a half-written decode is redone, never scored."""
    out, _ = bible_ci
    chain, walk, cache = "gradual_dec1_s2", "online_gradual_dec1_s2", "gradual_dec2_s2"  # stage 2 of each
    data = out / "data" / "prep"
    before = {"bin": {f.name: f.read_bytes() for f in (data / "bin").iterdir()},
              "cache": {f.name: f.read_bytes() for f in (out / "caches" / cache).iterdir()},
              "results": {f.name: without_timings(json.loads(f.read_text())) for f in (out / "results").glob("*.json")},
              "table": without_timings(json.loads((out / "results.json").read_text()))}
    for name in (chain, walk):
        shutil.copy(out / "models" / name / "checkpoint_last.pt", tmp_path / f"{name}.pt")
        shutil.rmtree(out / "models" / name)
        for f in (out / "logs" / f"{name}.train.log", out / "results" / f"{name}.json", out / "models" / f"{name}.pt"):
            f.unlink()
        for stage in (name, f"export_{name}", f"decode_{name}", f"decode_{name}_valid", f"eval_{name}"):
            (out / "stages" / f"{stage}.done").unlink()
    shutil.rmtree(out / "caches" / cache)
    (out / "stages" / f"cache_{cache}.done").unlink()
    shutil.rmtree(data)
    (out / "stages" / "prepare.done").unlink()
    # and a run interrupted after a training had finished but before its marker, with a half-written decode
    for stage in ("offline_dec1_s1", "export_offline_dec1_s1", "decode_offline_dec1_s1", "decode_offline_dec1_s1_valid",
                  "eval_offline_dec1_s1"):
        (out / "stages" / f"{stage}.done").unlink()
    (out / "results" / "offline_dec1_s1.json").unlink()
    (out / "generate" / "offline_dec1_s1.txt.tmp").write_text("H-0\t-1.0\thalf written\n")
    said = []

    # 1. in fairseq-preprocess, once the train split is binarised: no data, so no stage after it ran
    assert killed_pipeline(out, "fairseq_cli.preprocess:_make_dataset:1", said)[-1] == "prepare"
    assert not data.exists() and not (out / "stages" / "prepare.done").exists()
    # 2. in the cache build, its arrays allocated: the data is now whole, the cache is not there
    assert killed_pipeline(out, "fairseq_selfteach.core.teacher_cache:_allocated_memmap:2", said)[0] == "prepare"
    assert {f.name: f.read_bytes() for f in (data / "bin").iterdir()} == before["bin"]
    assert not (out / "caches" / cache).exists() and not (out / "stages" / f"cache_{cache}.done").exists()
    # 3. at update 33 of a student's 40 (an epoch is 27): its checkpoint_last.pt holds update 27
    killed_pipeline(out, "fairseq.trainer:Trainer.train_step:33", said)
    assert {f.name: f.read_bytes() for f in (out / "caches" / cache).iterdir()} == before["cache"]
    saved = [torch.load(out / "models" / n / "checkpoint_last.pt", weights_only=True)["optimizer_history"][-1]
             ["num_updates"] for n in (chain, walk) if (out / "models" / n / "checkpoint_last.pt").exists()]
    assert 27 in saved  # the killed one (the other may have finished)
    # 4. in decoding, once the first model is decoded (its output not yet renamed into place)
    killed_pipeline(out, "fairseq_cli.generate:main:1", said)
    for name in (chain, walk):
        assert weight_difference(tmp_path / f"{name}.pt", out / "models" / name / "checkpoint_last.pt") == 0.0
    assert not (out / "results" / f"{chain}.json").exists() or not (out / "results" / f"{walk}.json").exists()
    # 5. the same command to the end
    p = pipeline("bible-ci", "--out", out, *CI_ARGS)
    rows = (chain, walk, "offline_dec1_s1")  # their decodings and scoring at most, and the joins redone each run
    assert set(STARTED.findall(p.stdout)) <= {f"{stage}_{row}{valid}" for row in rows for stage in ("decode", "eval")
                                              for valid in ("", "_valid")} | {"trained", "report"}
    # the training that had finished is neither redone nor resumed
    assert "offline_dec1_s1: training had finished" in "".join(said + [p.stdout])
    assert {f.name: without_timings(json.loads(f.read_text())) for f in (out / "results").glob("*.json")} == \
        before["results"]
    assert without_timings(json.loads((out / "results.json").read_text())) == before["table"]
    assert not list((out / "generate").glob("*.tmp")) and not list((out / "data").glob("*.tmp"))


@pytest.mark.slow
def test_bible_ci_online_gradual_walks_one_model_through_the_schedule(bible_ci):
    """online-gradual: one 3-layer model; stage 1 exit 3 teaches exit 2, stage 2 continues the same model
    with exit 2 teaching exit 1, and decoder layer 3 rests in stage 2 (no gradient reaches it)."""
    out, log = bible_ci
    assert "online_gradual: one 3-layer model through 3→2→1, stages of 50 50 updates" in log
    for s in SEEDS:
        first = torch.load(out / "models" / f"online_gradual_dec2_s{s}" / "checkpoint_best.pt", weights_only=False)
        second = torch.load(out / "models" / f"online_gradual_dec1_s{s}" / "checkpoint_last.pt", weights_only=False)
        assert (first["cfg"]["criterion"]["teacher_exit"], first["cfg"]["criterion"]["student_exits"]) == (3, "2")
        assert (second["cfg"]["criterion"]["teacher_exit"], second["cfg"]["criterion"]["student_exits"]) == (2, "1")
        assert second["cfg"]["checkpoint"]["finetune_from_model"] == str(
            out / "models" / f"online_gradual_dec2_s{s}" / "checkpoint_best.pt")
        assert last_update(out / "logs" / f"online_gradual_dec1_s{s}.train.log") == TEACHER_UPDATES // 2
        a, b = first["model"], second["model"]
        rest = [k for k in a if k.startswith("decoder.layers.2.")]
        assert rest and all(torch.equal(a[k], b[k]) for k in rest)  # the layer above the teacher exit rested
        assert not torch.equal(a["decoder.layers.0.fc1.weight"], b["decoder.layers.0.fc1.weight"])  # training went on
        exported = torch.load(out / "models" / f"online_gradual_dec1_s{s}.pt", weights_only=True)
        assert exported["cfg"]["model"]["decoder_layers"] == 1
        best = torch.load(out / "models" / f"online_gradual_dec1_s{s}" / "checkpoint_best.pt", weights_only=False)
        assert all(torch.equal(exported["model"][k], best["model"][k]) for k in exported["model"])
        assert exported["selfteach"]["training"]["stage_updates"] == TEACHER_UPDATES // 2


@pytest.mark.slow
def test_bible_ci_online_gradual_from_teacher_walks_the_teacher(bible_ci):
    """online_gradual_from_teacher: the trained teacher itself walked through 3→2→1 in one model, each
    stage on the students' budget (the offline chain's); stage 2 continues stage 1, layer 3 resting."""
    out, log = bible_ci
    assert ("online_gradual_from_teacher: the trained teacher walked through 3→2→1 in one model, stages of "
            f"{STUDENT_UPDATES} updates") in log
    teacher = out / "models" / "teacher" / "checkpoint_best.pt"
    for s in SEEDS:
        folders = [out / "models" / f"online_gradual_from_teacher_dec{k}_s{s}" for k in (2, 1)]
        first, second = (torch.load(f / "checkpoint_last.pt", weights_only=False) for f in folders)
        assert first["cfg"]["checkpoint"]["finetune_from_model"] == str(teacher)
        assert second["cfg"]["checkpoint"]["finetune_from_model"] == str(folders[0] / "checkpoint_best.pt")
        assert [(c["cfg"]["criterion"]["teacher_exit"], c["cfg"]["criterion"]["student_exits"])
                for c in (first, second)] == [(3, "2"), (2, "1")]
        for f in folders:
            assert last_update(out / "logs" / f"{f.name}.train.log") == STUDENT_UPDATES
        best = torch.load(folders[0] / "checkpoint_best.pt", weights_only=False)["model"]
        rest = [k for k in best if k.startswith("decoder.layers.2.")]
        assert rest and all(torch.equal(best[k], second["model"][k]) for k in rest)
        exported = torch.load(out / "models" / f"online_gradual_from_teacher_dec1_s{s}.pt", weights_only=True)
        assert exported["cfg"]["model"]["decoder_layers"] == 1
