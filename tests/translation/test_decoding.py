"""Decoding one online-trained model at any exit (--exit-layer) and self-speculatively (--speculative-exit),
through fairseq-generate, against the exported student and plain greedy decoding."""
import re

import pytest

from tests.conftest import TEST_SENTENCES
from tests.helpers import REPO, USER_DIR, generate, run

pytestmark = pytest.mark.slow

OURS = ("--task", "self_distill_translation")
LIMIT = ("--max-len-a", 1.5, "--max-len-b", 10)  # the pipeline's: a weak model's repetitions stop early


def hypothesis_lines(stdout):
    """{sentence id: (score, tokens)} from fairseq-generate's H- lines."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("H-"):
            sid, score, tokens = line.split("\t")
            out[int(sid[2:])] = (float(score), tokens)
    return out


def speculative_stats(stderr):
    m = re.findall(r"so far: (\d+) sentence-steps, (\d+) of (\d+) drafts accepted .*?; (\d+) sentences ended "
                   r"inside a draft, (\d+) at the length limit", stderr)
    assert m, stderr[-2000:]
    return dict(zip(("steps", "accepted", "drafted", "eos_in_draft", "length_limit"), map(int, m[-1])))


def test_exit_layer_decodes_exactly_as_the_exported_student(online, toy_data, tmp_path):
    """Beam search (5) over the first 2 decoder layers of the online checkpoint, cut at load time, gives
    the exported 2-layer student's hypotheses and scores, decoded by plain fairseq."""
    student = tmp_path / "student_dec2.pt"
    run(["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint",
         online["dir"] / "checkpoint_last.pt", "--out", student, "--decoder-layers", 2])
    exported = hypothesis_lines(generate(toy_data, student, *LIMIT, user_dir=False, beam=5).stdout)
    at_exit = hypothesis_lines(generate(toy_data, online["dir"] / "checkpoint_last.pt", *OURS, *LIMIT,
                                        "--exit-layer", 2, beam=5).stdout)
    assert len(exported) == TEST_SENTENCES and at_exit == exported


@pytest.mark.parametrize("draft_exit,draft_tokens,limit", [
    (2, 3, LIMIT),  # the trained exit
    # exit 1 was never trained (bad drafts change the speed, never the output); every hypothesis is cut
    # at 6 tokens by the length limit, most of them inside a draft
    (1, 4, ("--max-len-a", 0, "--max-len-b", 6)),
])
def test_speculative_decoding_gives_plain_greedy_decodings_output(online, toy_data, draft_exit, draft_tokens, limit):
    ckpt = online["dir"] / "checkpoint_last.pt"
    plain = hypothesis_lines(generate(toy_data, ckpt, *limit, beam=1).stdout)
    p = generate(toy_data, ckpt, *OURS, *limit, "--speculative-exit", draft_exit, "--draft-tokens", draft_tokens,
                 beam=1)
    fast = hypothesis_lines(p.stdout)
    assert len(plain) == TEST_SENTENCES and fast.keys() == plain.keys()
    assert all(fast[i][1] == plain[i][1] for i in plain)  # the tokens: exactly
    assert max(abs(fast[i][0] - plain[i][0]) for i in plain) < 1e-4  # the scores: up to float rounding
    stats = speculative_stats(p.stderr)
    assert stats["accepted"] > 0 and stats["eos_in_draft"] > 0
    if draft_exit == 1:
        assert stats["length_limit"] > 0
        assert any(len(tokens.split()) == 6 for _, tokens in plain.values())


@pytest.mark.parametrize("args,message", [
    (("--speculative-exit", 2, "--beam", 5), "--speculative-exit is exact greedy decoding: give --beam 1 (got --beam 5)"),
    (("--speculative-exit", 4, "--beam", 1), "--speculative-exit 4: the model's decoder has 4 layers, so the draft "
                                             "exit must be between 1 and 3"),
    (("--exit-layer", 5), "--exit-layer 5: the model's decoder has 4 layers, so choose 1..4"),
])
def test_decoding_options_out_of_range_fail_in_one_line(online, toy_data, args, message):
    p = run(["fairseq-generate", toy_data, "--path", online["dir"] / "checkpoint_last.pt", "--cpu",
             "--user-dir", USER_DIR, *OURS, *args], cwd=REPO, check=False)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert p.returncode != 0 and errors == ["error: " + message] and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "H-" not in p.stdout
