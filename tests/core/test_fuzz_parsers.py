"""Property-based tests (hypothesis) of the inputs people edit by hand: GLUE TSVs, parallel text files,
IWSLT XML segments, settings tables, fairseq-generate logs, layer maps and exit lists. Every generated
input either parses to what the reader documents or is refused with its one-line error, never another
exception. The examples each property runs are fixed (`max_examples`, derandomised: CI runs the same
ones every time); `pytest --hypothesis-show-statistics` prints them (README, "When things go wrong")."""
import re

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from selfteach_pipeline.glue_format import GLUE_TASKS
from fairseq_selfteach.cli.generate_log import GenerateLogError, parse_generate_output
from selfteach_pipeline.errors import OptionError
from fairseq_selfteach.core.exits import parse_exit_weights, parse_exits
from fairseq_selfteach.core.layer_map import resolve_layer_map
from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.settings_table import read_table
from tests.helpers import load_script

glue_binarize, iwslt14, prepare_translation = (load_script(n) for n in ("glue_binarize", "iwslt14",
                                                                         "prepare_translation"))
PrepareError = prepare_translation.PrepareError  # preprocess/download.py's, as the scripts import it

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# text as people's files hold it: any characters, tabs and line breaks of every kind included
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
CLEAN = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\t\n\r"), max_size=12)
CELL = st.one_of(TEXT, st.sampled_from(["", "0", "1", "2", "-", "entailment", "3.5", "nan", "5.1", " 1"]))


def one_line(message: str) -> bool:
    return "\n" not in message and len(message) > 0


# ------------------------------------------------------------------------------------ GLUE TSVs
@FUZZ
@given(task=st.sampled_from(sorted(GLUE_TASKS)), data=st.data(), bom=st.booleans(), crlf=st.booleans(),
       junk=st.one_of(st.none(), st.none(), st.binary(min_size=1, max_size=4)))
def test_a_glue_tsv_is_read_as_its_layout_says_or_refused_naming_file_and_line(task, data, bom, crlf, junk,
                                                                                tmp_path_factory):
    spec = GLUE_TASKS[task]
    split, layout = next(iter(spec["splits"].items()))
    labels = spec["labels"]
    label = st.sampled_from(labels) if labels else st.floats(0, 5).map(str)
    # mostly rows of the layout's width with a label that may be good, sometimes any row at all
    width = layout["columns"]
    good = st.lists(CLEAN, min_size=width, max_size=width)
    if layout["label"] is not None:
        good = st.tuples(good, label).map(lambda x: x[0][:layout["label"]] + [x[1]] + x[0][layout["label"] + 1:])
    rows = data.draw(st.lists(good, min_size=1, max_size=6))
    if data.draw(st.booleans()):  # one thing wrong: a row of any cells, or a label of any text
        i = data.draw(st.integers(0, len(rows) - 1))
        if layout["label"] is not None and data.draw(st.booleans()):
            rows[i] = rows[i][:layout["label"]] + [data.draw(CELL)] + rows[i][layout["label"] + 1:]
        else:
            rows[i] = data.draw(st.lists(CELL, min_size=1, max_size=5))
    path = tmp_path_factory.mktemp("tsv") / layout["file"]
    lines = ["\t".join(r) for r in rows]
    data_bytes = ("\ufeff" if bom else "").encode() + "".join(x + ("\r\n" if crlf else "\n") for x in lines).encode()
    if junk is not None:
        data_bytes += junk
    data = data_bytes
    path.write_bytes(data)
    try:
        a, b, ys = glue_binarize.read_tsv(str(path), layout, labels)
    except glue_binarize.GlueFormatError as e:
        event("refused")
        message = str(e)
        assert one_line(message) and re.match(rf"{re.escape(str(path))}:\d+: ", message), message
        return
    event("accepted")
    # accepted: exactly the rows after the header, each with the layout's columns and a known label
    body = data.decode("utf-8").lstrip("\ufeff").split("\n")
    body = [x[:-1] if x.endswith("\r") else x for x in body]
    if body and body[-1] == "":
        body.pop()
    if layout["header"]:
        body = body[1:]
    cells = [x.split("\t") for x in body]
    assert all(len(c) == layout["columns"] for c in cells)
    assert a == [c[layout["a"]] for c in cells] and len(a) > 0
    if layout["b"] is not None:
        assert b == [c[layout["b"]] for c in cells]
    if layout["label"] is not None:
        if labels is None:
            assert ys == [float(c[layout["label"]]) for c in cells]
        else:
            assert ys == [labels.index(c[layout["label"]]) for c in cells]


# ---------------------------------------------------------------------------- parallel text files
@FUZZ
@given(lines=st.lists(TEXT.filter(lambda t: "\n" not in t and "\r" not in t), max_size=8),
       junk=st.one_of(st.none(), st.binary(min_size=1, max_size=6)))
def test_a_parallel_text_file_is_its_lines_or_refused_as_not_utf8(lines, junk, tmp_path_factory):
    """prepare_translation reads one sentence per line (\\n, \\r\\n or \\r end a line): the lines
    written, or, for bytes that are not UTF-8, one line naming the file."""
    path = tmp_path_factory.mktemp("par") / "train.de"
    data = "".join(x + "\n" for x in lines).encode()
    if junk is not None:
        data = junk + data
    path.write_bytes(data)
    try:
        got = prepare_translation.read_lines(str(path))
    except PrepareError as e:
        event("refused")
        assert one_line(str(e)) and str(e).startswith(f"{path}: not UTF-8"), str(e)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return
        raise AssertionError(f"refused UTF-8 input: {e}")
    event("accepted")
    expected = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    assert got == (expected[:-1] if expected[-1] == "" else expected)


# ------------------------------------------------------------------------------ IWSLT XML segments
SEG_CHARS = list("ab >/&;#x2019é\u2019\u2028\r\n\t\"'=")
SEG_TEXT = st.text(st.sampled_from(SEG_CHARS), max_size=25)  # no "<": inside a segment
NOISE = st.text(st.sampled_from(SEG_CHARS + ["<"]), max_size=25)


@FUZZ
@given(segments=st.lists(SEG_TEXT, max_size=6), noise=st.lists(NOISE, max_size=3), attrs=st.booleans())
def test_iwslt_xml_segments_are_the_seg_elements_in_order_each_one_line(segments, noise, attrs, tmp_path_factory):
    """Every <seg …>…</seg> of the file, in order, whatever surrounds it, each made one line (HTML
    entities decoded, ’ → ', any line break a space); bytes that are not UTF-8: one line naming the file."""
    path = tmp_path_factory.mktemp("xml") / "IWSLT14.TED.tst2012.de-en.de.xml"
    parts = []
    for i, text in enumerate(segments):
        parts.append("".join(noise[i % len(noise)] if noise else "").replace("<seg", "<sg"))
        parts.append(f'<seg id="{i + 1}">' if attrs else "<seg>")
        parts.append(text + "</seg>")
    path.write_text("<doc>" + "".join(parts) + "</doc>", encoding="utf-8")
    got = iwslt14._segments(str(path))
    assert len(got) == len(segments)
    for line in got:
        assert "\n" not in line and "\r" not in line and "\u2028" not in line and line == line.strip()


def test_iwslt_xml_that_is_not_utf8_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "IWSLT14.TED.tst2012.de-en.de.xml"
    path.write_bytes(b"<seg id='1'>caf\xe9</seg>")
    with pytest.raises(PrepareError, match=re.escape(f"{path} is not UTF-8")) as e:
        iwslt14._segments(str(path))
    assert one_line(str(e.value))


# ---------------------------------------------------------------------------------- settings tables
NAMES = st.sampled_from(["lr", "arch", "de", "bible", "Bad-Name", "", "x_1", "9lives"])
TABLE_CELL = st.one_of(st.sampled_from(["", "-", "5e-4", "yes", "6,5,4"]), CLEAN, CLEAN)


@st.composite
def settings_tables(draw):
    """The rows of a settings table (a header, then rows of its width), with one thing wrong half the time."""
    width = draw(st.integers(1, 3))
    header = ["setting"] + draw(st.lists(st.sampled_from(["de", "bible", "bible-ci", "bible-study"]),
                                         min_size=width, max_size=width, unique=True))
    names = draw(st.lists(st.sampled_from(["lr", "arch", "seeds", "max_tokens", "x_1"]), max_size=5, unique=True))
    rows = [header] + [[name] + draw(st.lists(TABLE_CELL.filter(bool), min_size=width, max_size=width))
                       for name in names]
    if draw(st.booleans()):
        i = draw(st.integers(0, len(rows) - 1))
        j = draw(st.integers(0, len(rows[i]) - 1))
        rows[i] = rows[i][:j] + [draw(st.one_of(NAMES, TABLE_CELL))] + rows[i][j + 1:]
        if draw(st.booleans()):
            rows[i] = rows[i][:draw(st.integers(1, len(rows[i])))]
    return rows


@FUZZ
@given(rows=settings_tables(), comments=st.booleans())
def test_a_settings_table_parses_to_its_cells_or_is_refused_naming_the_table(rows, comments, tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "settings.tsv"
    text = ("# a comment\n" if comments else "") + "".join("\t".join(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    try:
        settings_, parsed = read_table(str(path))
    except PlanError as e:
        event("refused")
        assert one_line(str(e)) and str(path) in str(e), str(e)
        return
    event("accepted")
    # accepted: a header, then rows of as many non-empty cells, each named once
    assert settings_ and len(set(settings_)) == len(settings_)
    for name, cells in parsed.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name) and len(cells) == len(settings_) and all(cells)


# --------------------------------------------------------------------------- fairseq-generate logs
def _h_line(sid, score, text):
    return f"H-{sid}\t{score}\t{text}"


LOG_LINE = st.one_of(
    st.builds(_h_line, st.integers(0, 5), st.sampled_from(["-0.25", "-1e-3", "0"]), TEXT.filter(lambda t: "\n" not in t)),
    st.sampled_from(["S-0\tein haus", "T-0\ta house", "P-0\t-0.1 -0.2", "D-1\t-0.3\ta house",
                     "2026-12-01 | INFO | fairseq_cli.generate | Translated 2 sentences (9 tokens) in 0.5s "
                     "(4.00 sentences/s, 18.00 tokens/s)", "H-x\t-0.1\tbad id", "H-1", "H-1\tscore\ttext",
                     "H-2\t-0.5", "Generate test with beam=5: BLEU4 = 1.0"]),
    TEXT.filter(lambda t: "\n" not in t))


@FUZZ
@given(lines=st.lists(LOG_LINE, max_size=10))
def test_a_generate_log_gives_its_h_lines_or_is_refused_naming_the_line(lines):
    try:
        hyps, speed = parse_generate_output(lines, "H", source="gen.txt")
    except GenerateLogError as e:
        event("refused")
        assert one_line(str(e)) and re.match(r"gen\.txt:\d+: ", str(e)), str(e)
        return
    event("accepted")
    expected = {}
    for line in lines:
        if line.startswith("H-"):
            sid, score, text = line[2:].split("\t", 2)
            assert int(sid) not in expected and float(score) is not None
            expected[int(sid)] = text
    assert hyps == expected
    speed_lines = [x for x in lines if "Translated 2 sentences" in x]
    assert (speed is not None) == bool(speed_lines) and (speed is None or speed["sentences"] == 2)


# ---------------------------------------------------------------------------- layer maps and exits
SPEC_PART = st.one_of(st.integers(-1, 9).map(str), st.sampled_from(["", " 2", "x", "1_0", "+3", "٣", "2.0"]))
SPEC = st.one_of(st.sampled_from(["first", "last", "every_other", "middle", " first ", "all", "ALL"]),
                 st.lists(SPEC_PART, min_size=1, max_size=5).map(",".join))


@FUZZ
@given(spec=SPEC, teacher=st.integers(1, 8), student=st.integers(1, 8), side=st.sampled_from(["encoder", "decoder"]))
def test_a_layer_map_is_distinct_teacher_layers_one_per_student_layer_or_one_line(spec, teacher, student, side):
    try:
        layers = resolve_layer_map(spec, teacher, student, side)
    except ValueError as e:
        event("refused")
        assert one_line(str(e)), str(e)
        return
    event("accepted")
    assert len(layers) == student and len(set(layers)) == student and all(0 <= i < teacher for i in layers)
    if re.fullmatch(r"[0-9]+(\s*,\s*[0-9]+)*", spec.strip()):
        assert layers == [int(x) for x in spec.split(",")]


@FUZZ
@given(spec=SPEC, weights=st.lists(st.sampled_from(["1", "0.5", "0", "-1", "x", "nan", ""]), max_size=4).map(",".join))
def test_exits_and_their_weights_are_layer_numbers_or_one_line(spec, weights):
    try:
        exits = parse_exits(spec)
    except OptionError as e:
        event("exits refused")
        assert one_line(str(e)) and "--student-exits" in str(e), str(e)
        return
    event("exits accepted")
    if exits == "all":
        assert spec.strip().lower() == "all"
        return
    parts = [x.strip() for x in spec.split(",")] if spec.strip() else []
    assert exits == sorted({int(x) for x in parts}) and all(re.fullmatch(r"[0-9]+", x) for x in parts)
    assert all(k >= 1 for k in exits)
    try:
        got = parse_exit_weights(weights, exits)
    except OptionError as e:
        assert one_line(str(e)) and "--exit-weights" in str(e), str(e)
        return
    assert len(got) == len(exits) and all(w >= 0 for w in got)
