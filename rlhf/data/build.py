"""What ``prepare`` builds from split texts: corpus rank lists, the prompt pool, the LM corpus.

Every random choice uses its own ``random.Random`` seeded from the run seed and a purpose
string, so each output depends only on its inputs and the seed.
"""
from __future__ import annotations

import random
import re
from typing import Iterable, Sequence

from rlhf.data.clean import LabelledText
from rlhf.data.ranklist import RankList


def purpose_rng(seed: int, *purpose: str) -> random.Random:
    """A ``random.Random`` for one purpose (e.g. ``"ranklists", "train"``), independent of the others."""
    return random.Random(":".join([str(seed), *purpose]))


def build_corpus_ranklists(texts: Sequence[LabelledText], *, split: str, list_size: int, positives: int,
                           max_lists: int | None, seed: int) -> list[RankList]:
    """Rank lists of ``list_size`` texts from a labelled split: ``positives`` positives tied in
    the top tier, ``list_size - positives`` negatives tied in the bottom tier.

    Texts are drawn without replacement (each used at most once in the split), after a seeded
    shuffle; as many lists as the scarcer label allows, at most ``max_lists`` (``None``: no cap).
    Ids are ``corpus-<split>-<index:06d>``; prompts are empty; ``source`` is ``"corpus"``.
    """
    if not 1 <= positives < list_size:
        raise ValueError(f"positives: got {positives}; expected 1..{list_size - 1} for list_size={list_size}")
    negatives = list_size - positives
    rng = purpose_rng(seed, "ranklists", split)
    pos = [t.text for t in texts if t.label == 1]
    neg = [t.text for t in texts if t.label == 0]
    rng.shuffle(pos)
    rng.shuffle(neg)
    n = min(len(pos) // positives, len(neg) // negatives)
    if max_lists is not None:
        n = min(n, max_lists)
    return [RankList(id=f"corpus-{split}-{i:06d}", prompt="",
                     tiers=[pos[i * positives:(i + 1) * positives], neg[i * negatives:(i + 1) * negatives]],
                     source="corpus")
            for i in range(n)]


def opinion_prefix(text: str, cues: re.Pattern, min_chars: int, max_chars: int) -> str | None:
    """``text`` up to and including its first opinion cue that ends within ``min_chars..max_chars``.

    ``None`` when no cue ends in that range, or the cue ends the text (nothing left to complete).
    ``cues``: from :func:`cue_pattern` (longest cue first, so "非常" wins over a cue inside it).
    """
    for match in cues.finditer(text, 0, max_chars):
        if match.end() >= min_chars:
            return text[:match.end()] if match.end() < len(text.rstrip()) else None
    return None


def cue_pattern(cues: Sequence[str]) -> re.Pattern:
    """A regex matching any of ``cues``, longest first."""
    if not cues:
        raise ValueError("cue_pattern: no cue words")
    return re.compile("|".join(re.escape(c) for c in sorted(set(cues), key=len, reverse=True)))


def sample_prefixes(texts: Iterable[str], *, n: int, min_chars: int, max_chars: int, rng: random.Random,
                    exclude: set[str], cues: Sequence[str] | None = None) -> list[str]:
    """Up to ``n`` distinct prefixes of ``texts``, each ``min_chars..max_chars`` long.

    ``cues`` ``None``: a prefix of random length; otherwise the :func:`opinion_prefix` of each
    text (texts without one are passed over). A prefix is always shorter than its text (there
    is something left to complete), never ends in a space and is never in ``exclude``; texts
    are visited in a seeded random order.
    """
    candidates = list(dict.fromkeys(texts))
    rng.shuffle(candidates)
    pattern = cue_pattern(cues) if cues is not None else None
    out: list[str] = []
    seen = set(exclude)
    for text in candidates:
        if len(out) >= n:
            break
        if pattern is not None:
            prefix = opinion_prefix(text, pattern, min_chars, max_chars)
            if prefix is None:
                continue
        else:
            length = rng.randint(min_chars, max_chars)
            if len(text) <= length:
                continue
            prefix = text[:length].rstrip()
        if len(prefix) < min_chars or prefix in seen:
            continue
        seen.add(prefix)
        out.append(prefix)
    return out


def build_prompt_pool(texts_by_split: dict[str, Sequence[str]], *, counts: dict[str, int], published: Sequence[str],
                      min_chars: int, max_chars: int, seed: int,
                      cues: Sequence[str] | None = None) -> list[dict]:
    """Prompt records ``{"prompt", "source", "split"}`` for the splits in ``counts`` (train, test).

    Each split gets every ``published`` prompt (source ``"published"``) and then prefixes of its
    own texts (source ``"heldout"``; opinion prefixes when ``cues`` is given, see
    :func:`sample_prefixes`) up to ``counts[split]`` prompts in all. A held-out prompt is in one
    split only: test prefixes never repeat a train prompt.
    """
    published = list(dict.fromkeys(published))
    records: list[dict] = []
    used = set(published)
    for split, count in counts.items():
        records += [{"prompt": p, "source": "published", "split": split} for p in published]
        prefixes = sample_prefixes(texts_by_split.get(split, ()), n=max(count - len(published), 0),
                                   min_chars=min_chars, max_chars=max_chars, rng=purpose_rng(seed, "prompts", split),
                                   exclude=used, cues=cues)
        used.update(prefixes)
        records += [{"prompt": p, "source": "heldout", "split": split} for p in prefixes]
    return records


def lm_lines(texts: Iterable[LabelledText], lists: Iterable[RankList]) -> list[str]:
    """The LM corpus of a split: its labelled texts, then the texts of its rank lists, each once."""
    lines = dict.fromkeys(t.text for t in texts)
    for rank_list in lists:
        lines.update(dict.fromkeys(rank_list.texts()))
    return list(lines)
