"""Numbered text lines of a file, decoded one line at a time so a bad line names its number."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from rlhf.data.errors import DataError, RejectCounter


def read_lines(path: str | Path, counter: RejectCounter, *, name: str | None = None,
               allow_empty: bool = False) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every non-blank line of ``path`` (1-based numbers).

    The file is read as bytes and each line decoded as UTF-8 on its own (a BOM at the start is
    dropped, ``\\r\\n`` endings are accepted): an undecodable line is rejected through
    ``counter`` with its number (reason ``undecodable``). Blank lines hold no record; they are
    counted in ``counter.blank_lines``. A file without a single non-blank line raises
    :class:`DataError` whatever ``counter.on_error`` says: there is nothing to read (unless
    ``allow_empty``: a prepared split may legitimately be empty). ``name`` is how messages call
    the file (default: ``path``).
    """
    name = str(path) if name is None else name
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{name}: file not found", path=name) from None
    if not allow_empty and not data.strip(b" \t\r\n\x0b\x0c\xef\xbb\xbf"):
        raise DataError(f"{name}: empty file: no records to read", path=name, reason="empty_file")
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()  # the newline that ends the last line does not start another one
    for number, raw in enumerate(pieces, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        raw = raw.removesuffix(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            bad = raw[e.start:e.start + 4]
            counter.reject(name, number, "undecodable", f"undecodable bytes (not UTF-8) at byte {e.start}: {bad!r}")
            continue
        if not text.strip():
            counter.blank_lines += 1
            continue
        yield number, text
