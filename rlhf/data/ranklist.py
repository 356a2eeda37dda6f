"""Rank lists: the one canonical preference format, its validation and its JSONL / TSV I/O.

A rank list holds K texts for one prompt in tiers, best first; texts of one tier are tied, so
only pairs from different tiers are compared::

    {"id": "…", "prompt": "", "tiers": [["best"], ["tied a", "tied b"], ["worst"]],
     "source": "corpus|human|import", "annotator": null, "created_at": null}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from rlhf.data.clean import text_normalizer
from rlhf.data.errors import InvalidRecord, RejectCounter, shorten
from rlhf.data.lines import read_lines

SOURCES = ("corpus", "human", "import")


@dataclass
class RankList:
    """K texts ranked in tiers (best first) for ``prompt``; see the module docstring."""

    id: str
    prompt: str
    tiers: list[list[str]]
    source: str = "import"
    annotator: str | None = None
    created_at: str | None = None

    def texts(self) -> list[str]:
        """Every text of the list, best tier first."""
        return [text for tier in self.tiers for text in tier]

    def pairs(self) -> list[tuple[str, str]]:
        """Every cross-tier ``(winner_text, loser_text)`` pair; tied texts are never paired."""
        return [(winner, loser)
                for i, better in enumerate(self.tiers) for worse in self.tiers[i + 1:]
                for winner in better for loser in worse]

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON object, fields in canonical order."""
        return {"id": self.id, "prompt": self.prompt, "tiers": [list(t) for t in self.tiers],
                "source": self.source, "annotator": self.annotator, "created_at": self.created_at}


def check_tiers(tiers: list[list[str]], max_chars: int | None = None) -> None:
    """Raise :class:`InvalidRecord` unless ``tiers`` (normalised texts, best tier first) make a comparable list.

    The one check of a rank list: ``prepare``'s readers, the labelling app and the reward model's
    training and evaluation all use it, so a list is valid or not, for one reason, everywhere.
    Checks, in order: empty text (``empty_text``), text over ``max_chars`` (``over_max_chars``),
    empty tier (``empty_tier``), fewer than two texts (``single_text``), a text twice in the list
    (``duplicate_text``), all texts in one tier (``single_tier``).
    """
    texts = [text for tier in tiers for text in tier]
    for text in texts:
        if not text:
            raise InvalidRecord("empty_text", "empty text in a list")
        if max_chars is not None and len(text) > max_chars:
            raise InvalidRecord("over_max_chars", f"text of {len(text)} characters, over max_chars={max_chars}: "
                                                  f"{shorten(text)}")
    for i, tier in enumerate(tiers):
        if not tier:
            raise InvalidRecord("empty_tier", f"tier {i} is empty; every tier needs at least one text")
    if len(texts) < 2:
        raise InvalidRecord("single_text", f"a list needs at least two texts, got {len(texts)}")
    seen: set[str] = set()
    for text in texts:
        if text in seen:
            raise InvalidRecord("duplicate_text", f"duplicate text within a list: {shorten(text)}")
        seen.add(text)
    if len(tiers) == 1:
        raise InvalidRecord("single_tier", f"all {len(texts)} texts sit in one tier: nothing to compare")


def _optional_str(obj: dict, key: str, default: str | None) -> str | None:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidRecord("invalid_field", f"field {key!r} must be a string or null, got {value!r}")
    return value


def ranklist_from_dict(obj: Any, *, default_id: str, default_source: str = "import",
                       normalize: Callable[[str], str] | None = None, max_chars: int | None = None) -> RankList:
    """Validate one decoded JSON object into a :class:`RankList` (texts and prompt normalised).

    Only ``tiers`` is required; a missing ``id`` becomes ``default_id``, a missing ``source``
    ``default_source``, a missing ``prompt`` ``""``. Raises :class:`InvalidRecord` naming the reason.
    """
    normalize = normalize or text_normalizer()
    if not isinstance(obj, dict):
        raise InvalidRecord("invalid_field", f"expected a JSON object, got {type(obj).__name__}")
    if obj.get("tiers") is None:
        raise InvalidRecord("missing_field", f"missing field 'tiers' (keys: {sorted(obj)})")
    raw = obj["tiers"]
    if not (isinstance(raw, list) and all(isinstance(t, list) and all(isinstance(x, str) for x in t) for t in raw)):
        raise InvalidRecord("invalid_field",
                            f"field 'tiers' must be a list of lists of strings, got {shorten(str(raw))}")
    tiers = [[normalize(text) for text in tier] for tier in raw]
    check_tiers(tiers, max_chars)
    prompt = normalize(_optional_str(obj, "prompt", ""))
    if max_chars is not None and len(prompt) > max_chars:
        raise InvalidRecord("over_max_chars", f"prompt of {len(prompt)} characters, over max_chars={max_chars}")
    source = _optional_str(obj, "source", default_source)
    if source not in SOURCES:
        raise InvalidRecord("invalid_field", f"field 'source' is {source!r}; expected one of {', '.join(SOURCES)}")
    list_id = obj.get("id")
    if list_id is None:
        list_id = default_id
    elif not isinstance(list_id, str) or not list_id:
        raise InvalidRecord("invalid_field", f"field 'id' must be a non-empty string, got {list_id!r}")
    return RankList(id=list_id, prompt=prompt, tiers=tiers, source=source,
                    annotator=_optional_str(obj, "annotator", None),
                    created_at=_optional_str(obj, "created_at", None))


def _claim_id(rank_list: RankList, seen_ids: set[str]) -> None:
    if rank_list.id in seen_ids:
        raise InvalidRecord("duplicate_id", f"duplicate rank-list id {rank_list.id!r}")
    seen_ids.add(rank_list.id)


def read_ranklists(path: str | Path, on_error: str = "raise", *, counter: RejectCounter | None = None,
                   default_source: str = "import", unicode_form: str = "NFC", max_chars: int | None = None,
                   seen_ids: set[str] | None = None, name: str | None = None, allow_empty: bool = False
                   ) -> list[RankList]:
    """Read canonical rank-list JSONL, validating every line (see :func:`ranklist_from_dict`).

    A bad line raises :class:`~rlhf.data.errors.DataError` naming file, line and reason, or
    with ``on_error="skip"`` is counted in ``counter`` (created when not given). A list without
    an ``id`` gets ``<file stem>-<line:06d>``. Ids must be unique within the file and
    ``seen_ids`` (updated in place, so several files can share one id space). An empty file is an
    error (nothing to read) unless ``allow_empty`` (e.g. reading a prepared split that may be empty).
    """
    counter = counter or RejectCounter(on_error)
    name = str(path) if name is None else name
    normalize = text_normalizer(unicode_form)
    seen_ids = set() if seen_ids is None else seen_ids
    lists = []
    for number, line in read_lines(path, counter, name=name, allow_empty=allow_empty):
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidRecord("invalid_json", f"invalid JSON: {e.msg} at column {e.colno}") from None
            rank_list = ranklist_from_dict(obj, default_id=f"{Path(path).stem}-{number:06d}",
                                           default_source=default_source, normalize=normalize, max_chars=max_chars)
            _claim_id(rank_list, seen_ids)
        except InvalidRecord as err:
            counter.reject_record(name, number, err)
            continue
        lists.append(rank_list)
    return lists


def read_published_tsv(path: str | Path, on_error: str = "raise", *, counter: RejectCounter | None = None,
                       unicode_form: str = "NFC", max_chars: int | None = None, name: str | None = None
                       ) -> list[RankList]:
    """Read the published format: one list a line, texts tab separated, best first, no prompt.

    Each text becomes its own tier (a strict ranking); ids are ``<file stem>-<line:06d>``,
    ``source`` is ``"import"``. Bad lines are handled as in :func:`read_ranklists`.
    """
    counter = counter or RejectCounter(on_error)
    name = str(path) if name is None else name
    normalize = text_normalizer(unicode_form)
    lists = []
    for number, line in read_lines(path, counter, name=name):
        tiers = [[normalize(text)] for text in line.split("\t")]
        try:
            check_tiers(tiers, max_chars)
        except InvalidRecord as err:
            counter.reject_record(name, number, err)
            continue
        lists.append(RankList(id=f"{Path(path).stem}-{number:06d}", prompt="", tiers=tiers, source="import"))
    return lists


def write_ranklists(path: str | Path, lists: Iterable[RankList]) -> int:
    """Write ``lists`` as canonical JSONL (UTF-8, one object a line); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for rank_list in lists:
            f.write(json.dumps(rank_list.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def drop_duplicate_ranklists(lists: Iterable[RankList]) -> tuple[list[RankList], int]:
    """Keep the first of lists with the same prompt and the same tiers (order within a tier ignored).

    Returns the kept lists in input order and the number dropped. Lists ranking the same texts
    differently are not duplicates: both are evidence.
    """
    seen: set[tuple] = set()
    kept = []
    dropped = 0
    for rank_list in lists:
        key = (rank_list.prompt, tuple(tuple(sorted(tier)) for tier in rank_list.tiers))
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(rank_list)
    return kept, dropped
