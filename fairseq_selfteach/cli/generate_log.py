"""Reading `fairseq-generate` output: the H- and D- lines and the closing speed line.

Per sentence fairseq-generate prints `H-ID<TAB>SCORE<TAB>TEXT` (the hypothesis, after --remove-bpe)
and `D-ID<TAB>SCORE<TAB>TEXT` (the same after --tokenizer/--bpe decoding); at the end
`Translated N sentences (M tokens) in Ts (X sentences/s, Y tokens/s)`. One reader for every tool
and test that looks at these logs, so that they agree on what a hypothesis is.
"""
import re
from typing import Dict, Iterable, Optional, Tuple

SPEED = re.compile(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s "
                   r"\(([\d.]+) sentences/s, ([\d.]+) tokens/s\)")


def speed_of(line: str) -> Optional[dict]:
    """The speed dict of a `Translated N sentences ...` line (found anywhere in it), else None."""
    m = SPEED.search(line)
    if m is None:
        return None
    return {"sentences": int(m.group(1).replace(",", "")), "decode_seconds": float(m.group(3)),
            "sentences_per_s": float(m.group(4)), "tokens_per_s": float(m.group(5))}


def parse_generate_output(lines: Iterable[str], kind: str = "H") -> Tuple[Dict[int, str], Optional[dict]]:
    """({sentence id: text} of the KIND- lines (kind "H" or "D"), the last speed line's dict or None).

    lines may keep their newline (a file) or not (str.splitlines)."""
    tag = kind + "-"
    hyps, speed = {}, None
    for line in lines:
        if line.startswith(tag):
            sid, _score, text = line[len(tag):].rstrip("\n").split("\t", 2)
            hyps[int(sid)] = text
        found = speed_of(line)
        if found is not None:
            speed = found
    return hyps, speed


def read_generate_log(path: str, kind: str = "H") -> Tuple[Dict[int, str], Optional[dict]]:
    """parse_generate_output of a log file (UTF-8)."""
    with open(path, encoding="utf-8") as f:
        return parse_generate_output(f, kind)
