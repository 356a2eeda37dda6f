"""A robustness set: perturbed copies of rank lists that keep each text's meaning and rank.

Each perturbation is a pure function of a text (the random one takes a seeded generator); a
rank list keeps its id, prompt and tiers, only its texts change, so the truth stays the same and
any scorer (reward model, linear baseline) is ranked on it by the same code
(:func:`rlhf.reward.evaluate.evaluate_text_scorer`). The perturbations, in :data:`PERTURBATIONS`:

``no_punctuation``   every Unicode punctuation character (category P*) removed
``nfkc``             NFKC-folded (full-width punctuation and letters to ASCII, compatibility forms)
``drop_chars``       ``drop_fraction`` of each text's characters (rounded, at least 1) dropped at random
``first_chars``      each text cut to its first ``first_chars`` characters
``prompt_prefix``    a published prompt prefixed to each text (list i takes prompt i mod n, all its texts
                     the same one, so the prefix moves every text of a list alike)

A perturbed list that is no longer a valid list (a text left empty, two texts made equal) is
skipped by the evaluation, for every scorer alike, and counted.
"""
from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch

PERTURBATIONS = ("no_punctuation", "nfkc", "drop_chars", "first_chars", "prompt_prefix")
FIGURES = ("pairwise_accuracy", "exact_order_accuracy", "kendall_tau_b")


@dataclass(frozen=True)
class RobustnessConfig:
    """The perturbations' settings (fixed, so the figures of two runs compare)."""

    drop_fraction: float = 0.1    # drop_chars: fraction of each text's characters dropped
    first_chars: int = 30         # first_chars: characters kept from the start of each text
    seed: int = 0                 # drop_chars: seed of the generator


def remove_punctuation(text: str) -> str:
    """``text`` without its punctuation characters (Unicode category P*: ，。！？、“” ... and ASCII ones)."""
    return "".join(c for c in text if not unicodedata.category(c).startswith("P"))


def nfkc(text: str) -> str:
    """``text`` NFKC-normalised (``，`` -> ``,``, ``！`` -> ``!``, full-width ``Ａ１`` -> ``A1``)."""
    return unicodedata.normalize("NFKC", text)


def drop_chars(text: str, fraction: float, rng: random.Random) -> str:
    """``text`` less ``round(fraction * len)`` characters (at least 1, never all) at positions drawn by ``rng``."""
    n = len(text)
    if n < 2 or fraction <= 0:
        return text
    k = min(max(round(fraction * n), 1), n - 1)
    dropped = set(rng.sample(range(n), k))
    return "".join(c for i, c in enumerate(text) if i not in dropped)


def first_chars(text: str, n: int) -> str:
    """The first ``n`` characters of ``text``."""
    return text[:n]


def _tiers(obj: Any) -> tuple[str, str, list[list[str]]]:
    if isinstance(obj, Mapping):
        return str(obj.get("id")), obj.get("prompt") or "", obj["tiers"]
    return str(obj.id), obj.prompt or "", obj.tiers


def perturb_lists(lists: Iterable[Any], prompts: Sequence[str], cfg: RobustnessConfig = RobustnessConfig()
                  ) -> dict[str, list[dict]]:
    """``{perturbation: [{"id", "prompt", "tiers"}, ...]}``: a perturbed copy of ``lists`` per perturbation.

    ``lists``: rank lists (``RankList`` objects or dicts with ``id``, ``prompt``, ``tiers``).
    ``prompts``: the prompts of ``prompt_prefix`` (the published ones); without any, that
    perturbation is left out. The same ``lists``, ``prompts`` and ``cfg`` give the same copies.
    """
    lists = [_tiers(obj) for obj in lists]
    rng = random.Random(cfg.seed)
    text_fns = {"no_punctuation": remove_punctuation, "nfkc": nfkc,
                "drop_chars": lambda t: drop_chars(t, cfg.drop_fraction, rng),
                "first_chars": lambda t: first_chars(t, cfg.first_chars)}
    out = {name: [{"id": list_id, "prompt": prompt, "tiers": [[fn(t) for t in tier] for tier in tiers]}
                  for list_id, prompt, tiers in lists]
           for name, fn in text_fns.items()}
    if prompts:
        out["prompt_prefix"] = [{"id": list_id, "prompt": prompt,
                                 "tiers": [[prompts[i % len(prompts)] + t for t in tier] for tier in tiers]}
                                for i, (list_id, prompt, tiers) in enumerate(lists)]
    return out


class _CachedScorer:
    """``scorer`` scoring each distinct text once: a text a perturbation leaves unchanged (NFKC of a text
    without full-width forms, a text already within ``first_chars``) is not scored again."""

    def __init__(self, scorer: Any):
        self.scorer = scorer
        self.scores: dict[str, float] = {}

    def score_texts(self, texts: Sequence[str]) -> list[float]:
        new = [t for t in dict.fromkeys(texts) if t not in self.scores]
        if new:
            self.scores.update(zip(new, torch.as_tensor(self.scorer.score_texts(new)).reshape(-1).tolist()))
        return [self.scores[t] for t in texts]


def robustness_report(scorers: Mapping[str, Any], lists: Sequence[Any], prompts: Sequence[str],
                      cfg: RobustnessConfig = RobustnessConfig()) -> dict[str, dict[str, Any]]:
    """Each scorer's ranking figures on each perturbed copy of ``lists``.

    ``scorers``: ``{name: scorer with score_texts}`` (e.g. ``{"model": rm, "baseline": linear}``).
    Returns ``{perturbation: {"n_lists", "n_lists_skipped", "n_pairs", name: {pairwise_accuracy,
    exact_order_accuracy, kendall_tau_b}, ...}}``; every scorer is ranked on the same valid lists.
    """
    from rlhf.reward.evaluate import evaluate_text_scorers

    cached = {name: _CachedScorer(scorer) for name, scorer in scorers.items()}
    report: dict[str, dict[str, Any]] = {}
    for name, perturbed in perturb_lists(lists, prompts, cfg).items():
        figures = evaluate_text_scorers(cached, perturbed, on_invalid="skip")
        first = next(iter(figures.values()))
        report[name] = {"n_lists": first["n_lists"], "n_lists_skipped": first["n_lists_skipped"],
                        "n_pairs": first["n_pairs"],
                        **{scorer: {k: f[k] for k in FIGURES} for scorer, f in figures.items()}}
    return report


def report_rows(report: Mapping[str, Mapping[str, Any]], scorers: Sequence[str],
                original: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """CSV rows of :func:`robustness_report`: one a perturbation, columns ``perturbation, n_lists,
    n_lists_skipped, <scorer>_<figure>...``; ``original`` (an entry of the same shape, the figures on
    the unperturbed lists) comes first when given."""
    rows = []
    entries = ({"original": {"n_lists_skipped": 0, **original}} if original is not None else {}) | dict(report)
    for name, entry in entries.items():
        rows.append({"perturbation": name, "n_lists": entry["n_lists"], "n_lists_skipped": entry["n_lists_skipped"],
                     **{f"{s}_{k}": entry[s][k] for s in scorers for k in FIGURES}})
    return rows


def report_columns(scorers: Sequence[str]) -> list[str]:
    """The columns of :func:`report_rows`."""
    return ["perturbation", "n_lists", "n_lists_skipped", *[f"{s}_{k}" for s in scorers for k in FIGURES]]
