"""Server-side checks of what annotators send; every failure is a :class:`Rejection` with a reason code.

The app turns a :class:`Rejection` into a 4xx JSON error ``{"error": reason, "detail": ...}`` and
stores it in the database's ``rejected`` table. Candidates are referred to by their index in the
task (``0..K-1``, the order they were shown); ``tiers`` is a list of tiers, best first, each a list
of indices; indices in one tier are tied.
"""
from __future__ import annotations

from typing import Any, Sequence

from rlhf.data.clean import normalize_text
from rlhf.data.errors import InvalidRecord
from rlhf.data.ranklist import check_tiers

#: Every reason a request can be rejected for, and its HTTP status.
REJECT_STATUS: dict[str, int] = {
    "invalid_json": 400,         # the body is not a JSON object
    "empty_annotator": 422,      # no annotator name (or only whitespace)
    "annotator_too_long": 422,   # a name over max_annotator_chars
    "empty_prompt": 422,         # a typed prompt that is empty after whitespace normalisation
    "prompt_too_long": 422,      # a typed prompt over max_prompt_chars
    "invalid_seed": 422,         # a seed that is not an integer in 0..2**32-1
    "malformed_tiers": 422,      # tiers is not a list of lists of candidate indices
    "unknown_candidate": 422,    # an index the task does not have
    "duplicate_candidate": 422,  # a candidate twice: in two tiers, or twice in one
    "missing_candidates": 422,   # a candidate of the task left unranked
    "empty_tier": 422,           # a tier without a candidate (rlhf.data.ranklist.check_tiers)
    "single_tier": 422,          # every candidate tied: nothing to learn from (the same check)
    "unknown_task": 404,         # no such task id
    "task_not_yours": 403,       # a task served to another annotator
    "task_closed": 409,          # a task already submitted or skipped
    "nothing_to_undo": 404,      # undo without an accepted label of this annotator
}

MAX_SEED = 2**32 - 1


class Rejection(Exception):
    """A request the server refuses: ``reason`` (a key of :data:`REJECT_STATUS`) and a readable ``detail``."""

    def __init__(self, reason: str, detail: str):
        if reason not in REJECT_STATUS:
            raise ValueError(f"unknown rejection reason {reason!r}; known: {', '.join(REJECT_STATUS)}")
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    @property
    def status(self) -> int:
        return REJECT_STATUS[self.reason]


def clean_annotator(raw: Any, max_chars: int) -> str:
    """The annotator's name, whitespace-normalised; rejects a missing, empty or over-long name."""
    if raw is None or not isinstance(raw, str) or not normalize_text(raw):
        raise Rejection("empty_annotator", "enter your name before labelling (annotator is empty)")
    name = normalize_text(raw)
    if len(name) > max_chars:
        raise Rejection("annotator_too_long", f"annotator name of {len(name)} characters; at most {max_chars}")
    return name


def clean_prompt(raw: Any, max_chars: int) -> str:
    """A typed prompt, normalised as ``prepare`` normalises texts; rejects empty and over-long prompts."""
    if not isinstance(raw, str):
        raise Rejection("empty_prompt", f"the prompt must be text, got {type(raw).__name__}")
    if not normalize_text(raw):
        raise Rejection("empty_prompt", "the typed prompt is empty")
    prompt = normalize_text(raw)
    if len(prompt) > max_chars:
        raise Rejection("prompt_too_long", f"prompt of {len(prompt)} characters; at most {max_chars} (max_prompt_chars)")
    return prompt


def clean_seed(raw: Any) -> int | None:
    """``None`` (draw one) or an integer seed in ``0..2**32-1``; numeric strings are accepted."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_SEED:
        raise Rejection("invalid_seed", f"seed {raw!r}: expected an integer in 0..{MAX_SEED}, or nothing for a random one")
    return raw


def clean_tiers(raw: Any, candidates: Sequence[str]) -> list[list[int]]:
    """Validate a ranking of the task's ``candidates`` by index: every one exactly once, at least two tiers.

    Returns the tiers as lists of ints (best first). Checks, in order: shape, unknown index,
    duplicate, missing candidates; then the ranked texts go through
    :func:`rlhf.data.ranklist.check_tiers`, the check ``prepare`` applies to the exported lists
    (an empty tier, every candidate in one tier), with its reason codes.
    """
    n_candidates = len(candidates)
    if not (isinstance(raw, list) and all(isinstance(t, list) for t in raw)
            and all(isinstance(c, int) and not isinstance(c, bool) for t in raw for c in t)):
        raise Rejection("malformed_tiers", "tiers must be a list of tiers (best first), each a list of candidate "
                                           f"indices 0..{n_candidates - 1}, e.g. [[2], [0, 3], [1]]")
    seen: set[int] = set()
    for tier in raw:
        for c in tier:
            if not 0 <= c < n_candidates:
                raise Rejection("unknown_candidate", f"candidate {c} is not in this task (it has candidates "
                                                     f"0..{n_candidates - 1})")
            if c in seen:
                raise Rejection("duplicate_candidate", f"candidate {c} is ranked twice (a candidate belongs to "
                                                       "exactly one tier; put tied candidates in the same tier)")
            seen.add(c)
    missing = sorted(set(range(n_candidates)) - seen)
    if missing:
        raise Rejection("missing_candidates", f"candidates {missing} are not ranked; rank every candidate "
                                              "(or skip the task)")
    try:  # a task's candidates are distinct, non-empty texts: only empty_tier and single_tier can fail here
        check_tiers([[candidates[c] for c in tier] for tier in raw])
    except InvalidRecord as err:
        raise Rejection(err.reason, err.detail) from None
    return [list(t) for t in raw]
