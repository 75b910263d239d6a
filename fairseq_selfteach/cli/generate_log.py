"""Reading `fairseq-generate` output: the H- and D- lines and the closing speed line.

Per sentence fairseq-generate prints `H-ID<TAB>SCORE<TAB>TEXT` (the hypothesis, after --remove-bpe)
and `D-ID<TAB>SCORE<TAB>TEXT` (the same after --tokenizer/--bpe decoding); at the end
`Translated N sentences (M tokens) in Ts (X sentences/s, Y tokens/s)`. One reader for every tool
and test that looks at these logs, so that they agree on what a hypothesis is.
"""
import re
from typing import Dict, Iterable, Optional, Tuple

from selfteach_pipeline.errors import SelfteachError

SPEED = re.compile(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s "
                   r"\(([\d.]+) sentences/s, ([\d.]+) tokens/s\)")


class GenerateLogError(SelfteachError, ValueError):
    """A KIND- line that is not `KIND-ID<TAB>SCORE<TAB>TEXT`, or a sentence id given twice."""


def speed_of(line: str) -> Optional[dict]:
    """The speed dict of a `Translated N sentences ...` line (found anywhere in it), else None."""
    m = SPEED.search(line)
    if m is None:
        return None
    return {"sentences": int(m.group(1).replace(",", "")), "decode_seconds": float(m.group(3)),
            "sentences_per_s": float(m.group(4)), "tokens_per_s": float(m.group(5))}


def parse_generate_output(lines: Iterable[str], kind: str = "H",
                          source: str = "") -> Tuple[Dict[int, str], Optional[dict]]:
    """({sentence id: text} of the KIND- lines (kind "H" or "D"), the last speed line's dict or None).

    lines may keep their newline (a file) or not (str.splitlines). A KIND- line that is not
    KIND-ID<TAB>SCORE<TAB>TEXT (a whole-number id, a number as score), or an id given twice, is a
    GenerateLogError naming SOURCE (the file) and the line."""
    tag = kind + "-"
    hyps, speed = {}, None
    for number, line in enumerate(lines, 1):
        if line.startswith(tag):
            parts = line[len(tag):].rstrip("\n").split("\t", 2)
            where = f"{source}:{number}" if source else f"line {number}"
            if len(parts) != 3 or not _ID.fullmatch(parts[0]) or not _is_number(parts[1]):
                raise GenerateLogError(f"{where}: {line.rstrip()[:60]!r} is not a fairseq-generate "
                                       f"{tag}ID<TAB>SCORE<TAB>TEXT line")
            sid = int(parts[0])
            if sid in hyps:
                raise GenerateLogError(f"{where}: sentence {sid} has a second {tag} line (two decodings in one log?)")
            hyps[sid] = parts[2]
        found = speed_of(line)
        if found is not None:
            speed = found
    return hyps, speed


_ID = re.compile(r"[0-9]+")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_generate_log(path: str, kind: str = "H") -> Tuple[Dict[int, str], Optional[dict]]:
    """parse_generate_output of a log file (UTF-8)."""
    with open(path, encoding="utf-8") as f:
        return parse_generate_output(f, kind, source=path)
