"""The depth pick (results.depth_pick, report --quality-floor): only validation scores choose, the
shallowest self-taught depth meeting the floor wins, the baselines are never candidates."""
import json

import pytest

from selfteach_pipeline import report
from selfteach_pipeline.results import depth_pick, rows


def row(name, method, depth, test, valid, params=None, speed=10.0, seeds=(1,)):
    return {"name": name, "method": method, "depth": depth, "dataset": "", "mean": test, "sd": None,
            "ci_low": test - 1, "ci_high": test + 1, "valid_mean": valid, "params": params or 100 * depth,
            "sentences_per_s": speed * (4 - depth), "seeds": [{"seed": s} for s in seeds]}


TEACHER = row("teacher_dec3", "teacher", 3, 30.0, 20.0)


def test_the_shallowest_depth_meeting_the_floor_on_validation_wins():
    rows_ = [TEACHER,
             row("offline_dec2", "offline", 2, 25.0, 19.5),
             row("online_dec2", "online", 2, 35.0, 19.6),   # the best on valid at depth 2 (test plays no part)
             row("offline_dec1", "offline", 1, 29.9, 19.3),  # 96.5 %: below a 0.97 floor
             row("scratch_same_budget_dec1", "scratch-same-budget", 1, 40.0, 25.0)]  # a baseline: never
    choice = depth_pick.pick(rows_, 0.97)
    assert choice["met"] and (choice["name"], choice["depth"]) == ("online_dec2", 2)
    assert choice["target_valid"] == 19.4 and choice["valid_fraction_of_teacher"] == 0.98
    assert choice["test_mean"] == 35.0 and choice["params_fraction_of_teacher"] == pytest.approx(2 / 3, abs=1e-4)
    assert choice["speed_up"] == 2.0  # 20 sentences/s against the teacher's 10
    assert [(d["depth"], d["name"], d["meets"]) for d in choice["best_per_depth"]] == [
        (1, "offline_dec1", False), (2, "online_dec2", True)]
    # a lower floor reaches depth 1; an anydepth exit is a candidate like any student
    assert depth_pick.pick(rows_ + [row("anydepth_exit1", "anydepth", 1, 20.0, 19.35)], 0.95)["name"] == "anydepth_exit1"


def test_no_candidate_meeting_the_floor_picks_the_teacher_and_no_validation_picks_nothing():
    choice = depth_pick.pick([TEACHER, row("offline_dec1", "offline", 1, 29.0, 10.0)], 0.97)
    assert not choice["met"] and choice["name"] == "teacher_dec3"
    assert "No self-taught model meets the floor" in depth_pick.markdown(choice, "sacreBLEU", "sentences/s")
    assert depth_pick.pick([{**TEACHER, "valid_mean": None}], 0.97) is None
    # a teacher at 0 (or a negative MCC) has no fraction to reach: no pick rather than every model
    assert depth_pick.pick([{**TEACHER, "valid_mean": 0.0}, row("offline_dec1", "offline", 1, 1.0, 0.0)], 0.97) is None


def test_report_writes_the_pick_from_per_seed_rows(tmp_path):
    """report --quality-floor on per-seed row files: the valid score is the mean over a model's seeds."""
    results = tmp_path / "results"
    results.mkdir()
    seeds = {"teacher_dec2": [("teacher", 2, 1, 30.0, 20.0)],
             "offline_dec1": [("offline", 1, 1, 28.0, 19.0), ("offline", 1, 2, 26.0, 20.0)],  # mean 19.5
             "scratch_same_budget_dec1": [("scratch-same-budget", 1, 1, 29.0, None)]}
    for name, entries in seeds.items():
        for method, depth, seed, test, valid in entries:
            r = {"name": name, "method": method, "seed": seed, "params": 10 * depth, "decoder_layers": depth,
                 "sacrebleu": test, "updates": 5, "collapsed": None, "sentences_per_s": 4.0 / depth}
            if valid is not None:
                r["valid_sacrebleu"] = valid
            (results / f"{name}_s{seed}.json").write_text(json.dumps(r))
    assert report.main(["--results", str(results), "--out", str(tmp_path / "results.md"),
                        "--plot", str(tmp_path / "p.png"), "--quality-floor", "0.97"]) == 0
    (choice,) = json.loads((tmp_path / "depth_pick.json").read_text())
    assert (choice["name"], choice["valid"], choice["test_mean"], choice["speed_up"]) == ("offline_dec1", 19.5, 27.0, 2.0)
    assert "**Pick: offline_dec1**" in (tmp_path / "results.md").read_text()
    with pytest.raises(SystemExit):
        report.main(["--results", str(results), "--out", str(tmp_path / "r.md"), "--plot", str(tmp_path / "p.png"),
                     "--quality-floor", "1.5"])
    assert rows.aggregate(rows.load(str(results)))[0]["valid_mean"] == 20.0
