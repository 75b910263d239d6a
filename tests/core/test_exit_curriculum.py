"""The exit curricula (core/exits.py curriculum_exits): LayerSkip's rotational and gradual schedules."""
import pytest
from hypothesis import given, strategies as st

from fairseq_selfteach.core.exits import check_curriculum, curriculum_exits

depths = st.integers(min_value=2, max_value=24)


@given(top=depths, period=st.integers(min_value=1, max_value=6), start=st.integers(min_value=0, max_value=10_000))
def test_rotational_trains_each_exit_once_every_period_updates(top, period, start):
    exits = list(range(1, top))
    seen = {k: 0 for k in exits}
    for u in range(start, start + period):
        on = curriculum_exits("rotational", exits, top, u, period=period)
        assert on == [k for k in exits if (k + u) % period == 0]
        for k in on:
            seen[k] += 1
    assert set(seen.values()) == {1}  # over any `period` consecutive updates, each exit exactly once


@given(top=depths, max_update=st.integers(min_value=1, max_value=5000),
       fraction=st.floats(min_value=0.05, max_value=1.0))
def test_gradual_switches_exits_on_from_the_top_down_and_never_off(top, max_update, fraction):
    exits = list(range(1, top))
    before = []
    for u in sorted({0, 1, max_update // 4, max_update // 2, int(fraction * max_update), max_update}):
        on = curriculum_exits("gradual", exits, top, u, max_update=max_update, fraction=fraction)
        assert set(before) <= set(on)  # an exit once on stays on
        assert on == exits[len(exits) - len(on):]  # the deepest exits come first
        before = on
    assert curriculum_exits("gradual", exits, top, max_update, max_update=max_update, fraction=fraction) == exits


def test_gradual_reaches_every_exit_at_the_fraction_of_training():
    exits = [1, 2, 3, 4, 5]  # a 6-layer model: exit k on once update/1000 >= 0.5·(7 - k)/6
    at = {u: curriculum_exits("gradual", exits, 6, u, max_update=1000, fraction=0.5) for u in (0, 166, 167, 499, 500)}
    assert at == {0: [], 166: [], 167: [5], 499: [2, 3, 4, 5], 500: exits}
    assert curriculum_exits("none", exits, 6, 3) == exits


@pytest.mark.parametrize("args, message", [
    (("rotational", 0, 0, 0.5), "--exit-curriculum-period must be >= 1"),
    (("gradual", 0, 2, 0.5), "needs --max-update"),
    (("gradual", 100, 2, 0.0), "--exit-curriculum-fraction must be in"),
])
def test_bad_curriculum_options_name_the_option(args, message):
    with pytest.raises(ValueError, match=message):
        check_curriculum(*args)
