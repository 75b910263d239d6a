"""Decoding one online-trained model at any exit (--exit-layer) and self-speculatively (--speculative-exit),
through fairseq-generate, against the exported student and plain greedy decoding."""
import re

import pytest

from tests.conftest import TEST_SENTENCES
from tests.helpers import REPO, USER_DIR, generate, run

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def random_model(folder, *options):
    """A random 1+3-layer transformer_iwslt_de_en (d=32) over a 40-word dictionary, in eval mode, built as
    fairseq-train builds it (the translation task's build_model)."""
    from fairseq import options as fairseq_options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    for lang in ("src", "tgt"):
        (folder / f"dict.{lang}.txt").write_text("".join(f"w{i} 1\n" for i in range(40)))
    parser = fairseq_options.get_training_parser()
    args = fairseq_options.parse_args_and_arch(parser, [
        str(folder), "--task", "translation", "--source-lang", "src", "--target-lang", "tgt", "--arch",
        "transformer_iwslt_de_en", "--encoder-layers", "1", "--decoder-layers", "3", "--encoder-embed-dim", "32",
        "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--max-target-positions", "64",
        "--cpu", *options])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    return task.build_model(cfg.model).eval(), task.target_dictionary


@pytest.mark.parametrize("options", [(), ("--decoder-learned-pos",), ("--decoder-normalize-before",)],
                         ids=["sinusoidal", "learned positions", "pre-norm"])
def test_speculative_greedy_equals_fairseqs_greedy_on_random_models(options, tmp_path):
    """In-process, the generators side by side: every draft exit and length, batches with sentences of
    different lengths (left-padded sources), and a length limit every hypothesis reaches."""
    import torch
    from fairseq.sequence_generator import SequenceGenerator

    from fairseq_selfteach.translation.speculative import SelfSpeculativeGenerator

    torch.manual_seed(0)
    model, d = random_model(tmp_path, *options)
    lengths = torch.tensor([7, 3, 5, 2, 6, 4])
    src = torch.full((len(lengths), int(lengths.max())), d.pad())
    for i, n in enumerate(lengths.tolist()):  # fairseq's translation sources: left-padded, EOS last
        src[i, -n:] = torch.cat([torch.randint(d.nspecial, len(d), (n - 1,)), torch.tensor([d.eos()])])
    sample = {"net_input": {"src_tokens": src, "src_lengths": lengths}}
    plain = SequenceGenerator([model], d, beam_size=1, max_len_a=0, max_len_b=12).generate([model], sample)
    want = [h[0]["tokens"].tolist() for h in plain]
    for draft_exit in (1, 2):
        for draft_tokens in (1, 3, 5):
            g = SelfSpeculativeGenerator([model], d, draft_exit, draft_tokens, max_len_a=0, max_len_b=12)
            got = g.generate([model], sample)
            assert [h[0]["tokens"].tolist() for h in got] == want, (draft_exit, draft_tokens)
            assert all(torch.allclose(a[0]["positional_scores"], b[0]["positional_scores"], atol=1e-4)
                       for a, b in zip(got, plain))
            assert g.stats["accepted"] > 0
