"""A fluency yardstick outside the models: samples vs real reviews under a character n-gram LM.

The models' own perplexity cannot say whether a text reads like a review (a collapsed policy is
confident about its own babble). Here a :class:`~rlhf.evaluation.char_ngram.CharNgramLM` is fit on
real reviews of the test split, and every sample's completion is scored given its prompt, next to
held-out real reviews cut to the same length: the characters ``[len(prompt), len(prompt) +
len(completion))`` of a held-out review longer than that, given its own opening as context. The
ratio sample / real perplexity is ~1 for text that reads like the reviews and grows with babble.

Reviews that an evaluated prompt was cut from are left out of the fit (the LM would favour their
own continuation of that prompt); a seeded ``heldout_fraction`` of the rest is the real reference.
"""
from __future__ import annotations

import bisect
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rlhf.evaluation.char_ngram import CharNgramLM

TEST_TEXTS = Path("splits/test.jsonl")      # under the prepared directory
TEST_LISTS = Path("ranklists/test.jsonl")


@dataclass(frozen=True)
class YardstickConfig:
    """The yardstick's fixed recipe (the same on every run, so its figures compare)."""

    order: int = 4                  # n-gram order of the character LM
    heldout_fraction: float = 0.2   # share of the test reviews kept out of the fit as the real reference


def read_test_reviews(prepared_dir: str | Path) -> list[str]:
    """The real texts of the test split: ``splits/test.jsonl`` (labelled corpus), else the texts of
    ``ranklists/test.jsonl`` (rank-list input); ``FileNotFoundError`` when neither has any."""
    root = Path(prepared_dir)
    texts: list[str] = []
    for path, field in ((root / TEST_TEXTS, "text"), (root / TEST_LISTS, "tiers")):
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    value = json.loads(line)[field]
                    texts.extend([value] if field == "text" else [t for tier in value for t in tier])
        if texts:
            return list(dict.fromkeys(texts))
    raise FileNotFoundError(f"no test reviews in {root} ({TEST_TEXTS} or {TEST_LISTS}) for the fluency yardstick; "
                            "run the prepare stage first")


def split_reviews(reviews: Sequence[str], prompts: Sequence[str], cfg: YardstickConfig, seed: int
                  ) -> tuple[list[str], list[str]]:
    """``(fit, heldout)``: reviews starting with one of ``prompts`` are dropped, the rest shuffled with
    ``seed`` and split, ``heldout_fraction`` (at least one) held out."""
    starts = tuple(p for p in prompts if p)
    kept = [r for r in reviews if not (starts and r.startswith(starts))]
    if len(kept) < 2:
        raise ValueError(f"fluency yardstick: {len(kept)} test review(s) left to fit on and hold out; expected 2+")
    random.Random(seed).shuffle(kept)
    n_held = min(max(round(cfg.heldout_fraction * len(kept)), 1), len(kept) - 1)
    return kept[n_held:], kept[:n_held]


def matched_real(heldout: Sequence[str], lengths: Sequence[tuple[int, int]]) -> tuple[list[str], list[int], list[int]]:
    """For each ``(prompt_chars, completion_chars)``, a held-out review and the span to score.

    Sample i takes the i-th (cyclically) held-out review at least ``prompt + completion`` long
    (the longest one when none is); returns ``(texts, starts, stops)`` for
    :meth:`CharNgramLM.perplexity`.
    """
    by_length = sorted(heldout, key=len)
    sizes = [len(r) for r in by_length]
    texts, starts, stops = [], [], []
    for i, (n_prompt, n_completion) in enumerate(lengths):
        need = n_prompt + n_completion
        lo = min(bisect.bisect_left(sizes, need), len(by_length) - 1)
        n_candidates = len(by_length) - lo
        text = by_length[lo + (i * 7919) % n_candidates]  # spread over the candidates, not only the shortest
        texts.append(text)
        starts.append(min(n_prompt, len(text)))
        stops.append(min(need, len(text)))
    return texts, starts, stops


def fluency_yardstick(reviews: Sequence[str], samples: Mapping[str, Sequence[tuple[str, str]]],
                      cfg: YardstickConfig = YardstickConfig(), seed: int = 0) -> dict[str, Any]:
    """Per-character perplexity of each model's completions and of matched real reviews.

    ``reviews``: real texts of the test split. ``samples``: ``{model: [(prompt, completion), ...]}``
    (e.g. ``base``, ``tuned``). Returns::

        {"order", "n_fit_texts", "n_fit_chars", "n_heldout_texts",
         model: {"perplexity", "real_perplexity", "ratio", "n_chars"}, ...}

    ``perplexity``: of the completions' characters given their prompts; ``real_perplexity``: of
    held-out reviews over the same spans (:func:`matched_real`); ``ratio`` = their quotient.
    Empty completions add no character; a figure with no character to score is ``None``.
    """
    prompts = sorted({p for pairs in samples.values() for p, _ in pairs})
    fit, heldout = split_reviews(reviews, prompts, cfg, seed)
    lm = CharNgramLM.fit(fit, cfg.order)
    out: dict[str, Any] = {"order": cfg.order, "n_fit_texts": len(fit), "n_fit_chars": lm.n_chars,
                           "n_heldout_texts": len(heldout)}
    for model, pairs in samples.items():
        pairs = [(p, c) for p, c in pairs if c]
        texts = [p + c for p, c in pairs]
        ppl = lm.perplexity(texts, starts=[len(p) for p, _ in pairs])
        real_texts, starts, stops = matched_real(heldout, [(len(p), len(c)) for p, c in pairs])
        real = lm.perplexity(real_texts, starts, stops)
        ratio = ppl / real if not (math.isnan(ppl) or math.isnan(real)) else float("nan")
        out[model] = {k: (None if math.isnan(v) else v) for k, v in
                      (("perplexity", ppl), ("real_perplexity", real), ("ratio", ratio))}
        out[model]["n_chars"] = sum(len(c) for _, c in pairs)
    return out
