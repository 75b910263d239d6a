"""A fairseq Dictionary whose indices are a BERT checkpoint's WordPiece ids.

fairseq's Dictionary starts every vocabulary with <s>, <pad>, </s>, <unk> and then the symbols it
was given, so loading a BERT vocab.txt the usual way shifts every id by 4 and the pretrained
embedding rows no longer line up with the tokens. BertDictionary adds no symbols of its own: symbol i
is line i of vocab.txt, exactly as the HF tokenizer numbers it, and the special indices are looked up
in that vocabulary (pad=[PAD], unk=[UNK], bos=[CLS], eos=[SEP]; [PAD] is 0, [CLS] 101 and [SEP] 102
in Google's uncased vocabulary).

The file it saves (dict.txt, written next to a converted checkpoint) is fairseq's own format,
"<symbol> <count>" per line in id order, so `Dictionary.load(path, add_special_symbols=False)` reads
the same indices too; BertDictionary.load additionally restores the special indices.
"""
import os
from typing import Optional

from fairseq.data import Dictionary

from selfteach_pipeline.errors import SelfteachError

# fairseq's flag for a symbol that appears twice: the later line owns the symbol (as HF's load_vocab)
_OVERWRITE_FLAG = "#fairseq:overwrite"


class BertDictionaryError(SelfteachError, ValueError):
    """A vocabulary or dictionary file that cannot be used, with a message naming the file."""


class BertDictionary(Dictionary):
    def __init__(
        self,
        *,
        pad: str = "[PAD]",
        unk: str = "[UNK]",
        bos: str = "[CLS]",
        eos: str = "[SEP]",
        mask: str = "[MASK]",
    ):
        super().__init__(bos=bos, pad=pad, eos=eos, unk=unk, add_special_symbols=False)
        self.mask_word = mask
        # no symbols are added before the vocabulary: everything in it is written by save()
        self.nspecial = 0

    @classmethod
    def from_vocab(cls, path: str, **special_words) -> "BertDictionary":
        """Read a BERT vocab.txt: one token per line, line i is WordPiece id i."""
        d = cls(**special_words)
        for token in _read_lines(path, "vocabulary"):
            # HF's load_vocab keeps everything but the newline, so a token may hold spaces
            d._append(token, 1, overwrite=token in d.indices)
        d._set_special_indices(path)
        return d

    @classmethod
    def load(cls, f, add_special_symbols: bool = False, **special_words) -> "BertDictionary":
        """Read a dictionary file written by save(); `f` is a path. add_special_symbols is
        accepted for fairseq's Dictionary.load signature and must stay False: adding symbols
        would shift the WordPiece ids."""
        if add_special_symbols:
            raise ValueError("BertDictionary.load never adds special symbols (they are in the vocabulary)")
        if not isinstance(f, str):
            raise TypeError("BertDictionary.load takes a path")
        d = cls(**special_words)
        for lineno, line in enumerate(_read_lines(f, "dictionary"), start=1):
            overwrite = False
            if line.endswith(" " + _OVERWRITE_FLAG):
                line, overwrite = line[: -len(_OVERWRITE_FLAG) - 1], True
            symbol, sep, count = line.rpartition(" ")
            if not sep or not count.isdigit():
                raise BertDictionaryError(
                    f"{f} line {lineno}: expected '<symbol> <count>' (fairseq dictionary format), "
                    f"got {line!r}"
                )
            if symbol in d.indices and not overwrite:
                raise BertDictionaryError(
                    f"{f} line {lineno}: symbol {symbol!r} appears twice without {_OVERWRITE_FLAG}"
                )
            d._append(symbol, int(count), overwrite=overwrite)
        d._set_special_indices(f)
        return d

    def save(self, f) -> None:
        """Write every symbol in id order ("<symbol> <count>"), atomically when `f` is a path."""
        seen = set()
        lines = []
        for symbol, count in zip(self.symbols, self.count):
            flag = f" {_OVERWRITE_FLAG}" if symbol in seen else ""
            seen.add(symbol)
            lines.append(f"{symbol} {count}{flag}\n")
        text = "".join(lines)
        if isinstance(f, str):
            from selfteach_pipeline.files import atomic_write_text

            atomic_write_text(f, text)
        else:
            f.write(text)

    def mask(self) -> Optional[int]:
        """Index of [MASK], or None when the vocabulary has none."""
        return self.mask_index

    # --- internals -------------------------------------------------------------------------

    def _append(self, symbol: str, count: int, overwrite: bool) -> None:
        # add_symbol with overwrite=False would merge a repeated symbol into its first index and
        # shift every later id; a repeated vocabulary line still occupies its own id
        idx = len(self.symbols)
        self.symbols.append(symbol)
        self.count.append(count)
        if overwrite or symbol not in self.indices:
            self.indices[symbol] = idx

    def _set_special_indices(self, path: str) -> None:
        self.source_path = path
        if not self.symbols:
            raise BertDictionaryError(f"{path} is empty")
        specials = (self.pad_word, self.unk_word, self.bos_word, self.eos_word)
        missing = [w for w in specials if w not in self.indices]
        if missing:
            raise BertDictionaryError(
                f"{path} has no {', '.join(missing)}: it is not a BERT WordPiece vocabulary "
                f"(or pass its own special tokens)"
            )
        self.pad_index = self.indices[self.pad_word]
        self.unk_index = self.indices[self.unk_word]
        self.bos_index = self.indices[self.bos_word]
        self.eos_index = self.indices[self.eos_word]
        self.mask_index = self.indices.get(self.mask_word)


def _read_lines(path: str, what: str):
    if not os.path.isfile(path):
        raise BertDictionaryError(f"{what} file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise BertDictionaryError(f"{path} is not UTF-8 text ({e})") from e
    # split on "\n" only (not str.splitlines): a token may be an exotic Unicode line separator
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines

