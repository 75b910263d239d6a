"""fairseq_selfteach/cli/generate_log.py: the one reader of fairseq-generate output, and the tools
built on it (score_translation's log check, seqkd_corpus)."""
import pytest

from fairseq_selfteach.cli import generate_log, score_translation, seqkd_corpus

# the shape of fairseq-generate's output (S/T/H/D/P lines, then the speed line on the log)
LOG = (
    "S-1\tein haus\n"
    "T-1\ta house\n"
    "H-1\t-0.41\ta house\n"
    "D-1\t-0.41\tA house\n"
    "P-1\t-0.5 -0.3\n"
    "S-0\tdas ist gut\n"
    "H-0\t-0.20\tthat is good\n"
    "D-0\t-0.20\tThat is good\n"
    "H-2\t-1.5\t\n"  # an empty hypothesis
    "D-2\t-1.5\twith\ta tab\n"  # the text is everything after the second tab
    "2024-01-01 | INFO | fairseq_cli.generate | Translated 1,203 sentences (25,000 tokens) in 3.5s "
    "(343.71 sentences/s, 7142.86 tokens/s)\n"
)


def test_h_and_d_lines_and_speed():
    hyps, speed = generate_log.parse_generate_output(LOG.splitlines(), "H")
    assert hyps == {0: "that is good", 1: "a house", 2: ""}
    assert speed == {"sentences": 1203, "decode_seconds": 3.5, "sentences_per_s": 343.71, "tokens_per_s": 7142.86}
    detok, _ = generate_log.parse_generate_output(LOG.splitlines(keepends=True), "D")
    assert detok == {0: "That is good", 1: "A house", 2: "with\ta tab"}


def test_read_generate_log(tmp_path):
    path = tmp_path / "gen.txt"
    path.write_text(LOG, encoding="utf-8")
    assert generate_log.read_generate_log(str(path)) == generate_log.parse_generate_output(LOG.splitlines())
    unfinished = tmp_path / "cut.txt"
    unfinished.write_text(LOG.splitlines(keepends=True)[2], encoding="utf-8")
    assert generate_log.read_generate_log(str(unfinished)) == ({1: "a house"}, None)
    with pytest.raises(score_translation.ScoreError, match="did not finish"):
        score_translation.read_generate_log(str(unfinished))


def test_seqkd_corpus(tmp_path, capsys):
    (tmp_path / "gen.txt").write_text(LOG, encoding="utf-8")
    (tmp_path / "train.de").write_text("das ist gut\nein haus\nleer\n", encoding="utf-8")
    args = ["--generate-log", tmp_path / "gen.txt", "--source", tmp_path / "train.de",
            "--out-prefix", tmp_path / "kd", "--src", "de", "--tgt", "en"]
    assert seqkd_corpus.main([str(a) for a in args]) == 0
    assert (tmp_path / "kd.de").read_text() == "das ist gut\nein haus\n"  # the empty hypothesis dropped
    assert (tmp_path / "kd.en").read_text() == "that is good\na house\n"
    assert "1 empty hypotheses dropped" in capsys.readouterr().out
    (tmp_path / "train.de").write_text("a\nb\nc\nd\n", encoding="utf-8")
    assert seqkd_corpus.main([str(a) for a in args]) == 2
    assert "no hypothesis for 1 of 4" in capsys.readouterr().err
