"""Labels out and in: rank-list JSONL for the ``prepare`` stage, and imports of existing rank lists.

``export_labels`` writes every accepted label as a canonical rank list (DESIGN.md §4,
``source: "human"``) to ``data/labels/human.jsonl`` by default, the directory the ``prepare``
stage reads (a DVC dependency). The order is deterministic (creation time, then database id)
and the file is replaced atomically: a reader sees the old file or the new one, never half.

``import_labels`` reads canonical rank-list JSONL or the published tab-separated format
through :mod:`rlhf.data.ranklist` (the same validation as ``prepare``), skips bad lines and
counts them by reason.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rlhf.data.errors import RejectCounter
from rlhf.data.ranklist import ranklist_from_dict, read_published_tsv, read_ranklists

from labeler.store import LabelStore, to_utc_iso

DEFAULT_EXPORT = Path("data") / "labels" / "human.jsonl"
IMPORT_FORMATS = ("auto", "ranklists", "published_tsv")


@dataclass
class ExportResult:
    """What an export wrote: ``path`` (``None`` when there was nothing to write) and ``count`` lists."""

    path: Path | None
    count: int
    removed_stale: bool = False


def export_labels(db: LabelStore | str | Path, out_path: str | Path = DEFAULT_EXPORT) -> ExportResult:
    """Write the accepted labels of ``db`` as rank-list JSONL to ``out_path``, atomically.

    One object a line, ``{"id", "prompt", "tiers", "source": "human", "annotator", "created_at"}``,
    ordered by ``created_at`` then database id, so the same database gives the same bytes. Every
    list is checked with the ``prepare`` stage's own validation first (``ValueError`` if one fails).
    With no accepted label nothing is written, and an earlier export at ``out_path`` is removed:
    ``prepare`` refuses an empty file, and undone labels must not live on in a stale one.
    """
    store = db if isinstance(db, LabelStore) else LabelStore(db)
    out_path = Path(out_path)
    lines = []
    for label in store.labels("accepted"):
        obj = label.to_ranklist().to_dict()
        try:
            ranklist_from_dict(obj, default_id=label.uid, default_source="human")
        except Exception as e:  # the store validated it; a failure here means a damaged database
            raise ValueError(f"{store.path}: label {label.uid} is not a valid rank list: {e}") from e
        lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
    if not lines:
        stale = out_path.exists()
        if stale:
            out_path.unlink()
        return ExportResult(None, 0, removed_stale=stale)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name does not end in .jsonl: prepare reads data/labels/*.jsonl and must never see it.
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ExportResult(out_path, len(lines))


@dataclass
class ImportResult:
    """Counts of an import: ``read`` lists parsed, ``imported`` new, ``rejected`` by reason."""

    path: Path
    format: str
    read: int = 0
    imported: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def detect_format(path: Path) -> str:
    """``ranklists`` for a JSON-lines extension or when the first non-blank line is a JSON object, else
    ``published_tsv`` (a bad first line of a ``.jsonl`` file is one rejected record, not another format)."""
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return "ranklists"
    with path.open("rb") as f:
        for raw in f:
            line = raw.strip().removeprefix(b"\xef\xbb\xbf")
            if line:
                return "ranklists" if line.startswith(b"{") else "published_tsv"
    return "ranklists"


def import_labels(db: LabelStore | str | Path, file: str | Path, *, fmt: str = "auto",
                  max_chars: int | None = 4096) -> ImportResult:
    """Add the rank lists of ``file`` to ``db`` (origin ``import:<file name>``).

    ``fmt``: ``ranklists`` (canonical JSONL), ``published_tsv`` (one list a line, texts tab separated,
    best first) or ``auto``. Lines that fail validation are counted by the reasons of
    :data:`rlhf.data.errors.REJECT_REASONS`; besides those, ``already_imported`` (a list whose id is
    stored with the same content: importing a file twice adds nothing), ``duplicate_id`` (an id stored
    with different content) and ``invalid_created_at``. Raises ``DataError`` when the file is missing
    or empty.
    """
    store = db if isinstance(db, LabelStore) else LabelStore(db)
    path = Path(file)
    if fmt not in IMPORT_FORMATS:
        raise ValueError(f"format {fmt!r}; expected one of {', '.join(IMPORT_FORMATS)}")
    if fmt == "auto" and path.is_file():
        fmt = detect_format(path)
    counter = RejectCounter("skip")
    if fmt == "published_tsv":
        lists = read_published_tsv(path, counter=counter, max_chars=max_chars)
    else:
        lists = read_ranklists(path, counter=counter, default_source="human", max_chars=max_chars)
    result = ImportResult(path=path, format=fmt, read=len(lists))
    extra = {"invalid_created_at": 0}
    valid = []
    for rank_list in lists:
        try:
            rank_list.created_at = to_utc_iso(rank_list.created_at) if rank_list.created_at else None
        except ValueError:
            extra["invalid_created_at"] += 1
            continue
        valid.append(rank_list)
    counts = store.add_ranklists(valid, origin=f"import:{path.name}")
    result.imported = counts.pop("imported")
    extra.update(counts)
    result.rejected = {reason: n for reason, n in {**counter.counts, **extra}.items() if n}
    return result
