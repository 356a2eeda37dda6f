"""Bad input: one error type that names file, line and reason, and a counter for skip mode.

Readers call :meth:`RejectCounter.reject` for every record they cannot use. With
``on_error="raise"`` that raises :class:`DataError` (``reviews.jsonl:17: duplicate text within a
list: '好'``); with ``on_error="skip"`` it counts the record under its reason, so the stage's
metrics say how many lines were dropped and why (nothing is dropped silently).
"""
from __future__ import annotations

from pathlib import Path

#: Every reason a record can be rejected for; each is always present in the metrics (0 when none).
REJECT_REASONS: tuple[str, ...] = (
    "undecodable",        # the line's bytes are not UTF-8
    "invalid_json",       # the line is not JSON
    "missing_field",      # a required field (tiers, text, label) is absent or null
    "invalid_field",      # a field has the wrong type (tiers not a list of lists of strings, ...)
    "empty_text",         # a text is empty after whitespace normalisation
    "over_max_chars",     # a text is longer than data.max_chars
    "invalid_label",      # a label that is not 0 or 1
    "single_text",        # a rank list with fewer than two texts
    "empty_tier",         # a rank list with an empty tier
    "single_tier",        # a rank list whose texts all sit in one tier: nothing to compare
    "duplicate_text",     # the same text twice inside one rank list
    "duplicate_id",       # a rank-list id seen before
)

ON_ERROR_CHOICES = ("raise", "skip")
#: What the ``prepare`` stage's errors add: the setting that turns raising into counting.
ON_ERROR_HINT = "set data.on_error: skip to skip and count such records"


class DataError(ValueError):
    """Input that cannot be prepared; the message names file, 1-based line and reason."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 reason: str | None = None):
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = reason


class InvalidRecord(Exception):
    """Raised by record parsers; the reader turns it into a :class:`DataError` or a count."""

    def __init__(self, reason: str, detail: str):
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}; known: {', '.join(REJECT_REASONS)}")
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def shorten(text: str, limit: int = 40) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters, for error messages."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


class RejectCounter:
    """Raise on bad records (``on_error="raise"``) or count them by reason (``"skip"``).

    ``hint``: added in parentheses to every raised error, e.g. :data:`ON_ERROR_HINT` where the
    ``prepare`` stage reads ``params.data`` (other readers, like ``rlhf score --file``, have no such setting).
    """

    def __init__(self, on_error: str = "raise", *, hint: str = ""):
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error: got {on_error!r}; expected one of {', '.join(ON_ERROR_CHOICES)}")
        self.on_error = on_error
        self.hint = hint
        self.counts: dict[str, int] = {reason: 0 for reason in REJECT_REASONS}
        self.blank_lines = 0  # lines that hold no record: not bad input, but still accounted for

    def reject(self, path: str | Path, line: int, reason: str, detail: str) -> None:
        """Handle one bad record at ``path:line``: raise :class:`DataError` or count it."""
        if reason not in self.counts:
            raise ValueError(f"unknown reject reason {reason!r}; known: {', '.join(REJECT_REASONS)}")
        if self.on_error == "raise":
            hint = f" ({self.hint})" if self.hint else ""
            raise DataError(f"{path}:{line}: {detail}{hint}", path=path, line=line, reason=reason)
        self.counts[reason] += 1

    def reject_record(self, path: str | Path, line: int, err: InvalidRecord) -> None:
        """:meth:`reject` for an :class:`InvalidRecord` raised by a parser."""
        self.reject(path, line, err.reason, err.detail)

    @property
    def total(self) -> int:
        """Records rejected so far (always 0 in raise mode)."""
        return sum(self.counts.values())
