"""Evaluating a reward model on rank lists: pairwise, exact-order and Kendall tau-b agreement.

A rank list is anything with ``tiers`` (best first; a tier is a list of tied texts) and
optionally ``id`` and ``prompt``: a ``RankList`` object, a dict read from the rank-list JSONL, or
a bare ``list[list[str]]`` of tiers. The RM scores ``prompt + text`` (plain concatenation; the
corpus lists have an empty prompt), as ``[BOS] + prompt + text + [EOS]``.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch

from rlhf.data.errors import InvalidRecord
from rlhf.data.ranklist import check_tiers
from rlhf.reward.loss import RankPairs, build_rank_pairs, list_all_correct
from rlhf.reward.model import RewardScorer


class InvalidRankListError(ValueError):
    """A rank list the reward model cannot learn from, named in the message.

    ``reason`` is the reason code of :func:`rlhf.data.ranklist.check_tiers` (the ``prepare``
    stage's codes, :data:`rlhf.data.errors.REJECT_REASONS`), for counting skipped lists.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RankListView:
    """The fields of a rank list the reward model needs."""

    id: str
    prompt: str
    tiers: list[list[str]]

    def texts(self) -> list[str]:
        """``prompt + text`` for every text, tier after tier (the order of :func:`build_rank_pairs`)."""
        return [self.prompt + t for tier in self.tiers for t in tier]


def as_rank_list(obj: Any, index: int) -> RankListView:
    """A :class:`RankListView` of ``obj`` (object with ``.tiers``, mapping with ``"tiers"``, or tiers)."""
    if isinstance(obj, Mapping):
        tiers, list_id, prompt = obj.get("tiers"), obj.get("id"), obj.get("prompt")
    elif hasattr(obj, "tiers"):
        tiers, list_id, prompt = obj.tiers, getattr(obj, "id", None), getattr(obj, "prompt", None)
    else:
        tiers, list_id, prompt = obj, None, None
    list_id = str(list_id) if list_id is not None else f"#{index}"
    if not isinstance(tiers, (list, tuple)) or not all(isinstance(t, (list, tuple)) for t in tiers):
        raise InvalidRankListError(f"rank list {list_id!r}: tiers = {tiers!r}; expected a list of tiers, each a list "
                                   "of texts, best tier first", "invalid_field")
    return RankListView(id=list_id, prompt=prompt or "", tiers=[[str(t) for t in tier] for tier in tiers])


def prepare_lists(lists: Iterable[Any], on_invalid: str = "error") -> tuple[list[RankListView], dict[str, int]]:
    """Views of the valid lists, and counts of the skipped ones by reason.

    ``on_invalid='error'`` raises :class:`InvalidRankListError` naming the first bad list;
    ``'skip'`` drops it and counts it under its reason (``single_text``, ``single_tier``, ...): a list
    must pass :func:`rlhf.data.ranklist.check_tiers`, the check of the ``prepare`` stage.
    """
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid: got {on_invalid!r}; expected 'error' or 'skip'")
    views, skipped = [], collections.Counter()
    for i, obj in enumerate(lists):
        try:
            view = as_rank_list(obj, i)
            try:
                check_tiers(view.tiers)
            except InvalidRecord as e:
                raise InvalidRankListError(f"rank list {view.id!r}: {e.detail}", e.reason) from None
        except InvalidRankListError as e:
            if on_invalid == "error":
                raise
            skipped[e.reason] += 1
            continue
        views.append(view)
    return views, dict(skipped)


def kendall_tau_b(truth: torch.Tensor, scores: torch.Tensor) -> float:
    """Kendall's tau-b between ``truth`` (n,) and ``scores`` (n,) (higher = better in both).

    ``tau_b = (C - D) / sqrt((n0 - n1) * (n0 - n2))`` over the n0 = n(n-1)/2 pairs, C/D the
    concordant/discordant pairs, n1/n2 the pairs tied in truth/scores (scipy's default variant).
    Tiers tie texts in ``truth``, so a perfect order of 2 tiers of 2 reaches sqrt(4/6) ~ 0.816,
    not 1. Returns 0.0 when undefined (every truth or every score tied).
    """
    n = truth.numel()
    i, j = torch.triu_indices(n, n, offset=1)
    dx = torch.sign(truth[i] - truth[j])
    dy = torch.sign(scores[i] - scores[j])
    n0 = n * (n - 1) / 2
    n1 = float((dx == 0).sum())
    n2 = float((dy == 0).sum())
    denom = math.sqrt((n0 - n1) * (n0 - n2))
    return float((dx * dy).sum()) / denom if denom > 0 else 0.0


def ranking_metrics(scores: torch.Tensor, pairs: RankPairs) -> dict[str, Any]:
    """Agreement of ``scores`` (n_texts,) with the tiers of ``pairs``' lists.

    Returns scalars ``pairwise_accuracy`` (correct cross-tier pairs / all pairs; a score tie is
    wrong), ``pairwise_accuracy_list_mean`` (the same per list, averaged over lists),
    ``exact_order_accuracy`` (lists whose every pair is right), ``kendall_tau_b`` (tau-b per list
    against the tier order, averaged over lists) and ``kendall_tau_b_max`` (the mean tau-b a
    perfect model would get, < 1 because of tied tiers), plus per-list tensors under ``_per_list``.
    """
    scores = scores.detach().float().cpu()
    correct = scores[pairs.winner] > scores[pairs.loser]  # (n_pairs,)
    exact = list_all_correct(correct, pairs)  # (n_lists,)
    pairs_per_list = torch.bincount(pairs.pair_list, minlength=pairs.n_lists)
    right_per_list = torch.bincount(pairs.pair_list, weights=correct.float(), minlength=pairs.n_lists)
    taus, tau_max = [], []
    for b in range(pairs.n_lists):
        sel = pairs.text_list == b
        truth = -pairs.text_tier[sel].float()
        taus.append(kendall_tau_b(truth, scores[sel]))
        tau_max.append(kendall_tau_b(truth, truth + 1e-3 * torch.arange(int(sel.sum()), 0, -1)))
    taus_t = torch.tensor(taus)
    return {
        "pairwise_accuracy": correct.float().mean().item(),
        "pairwise_accuracy_list_mean": (right_per_list / pairs_per_list).mean().item(),
        "exact_order_accuracy": exact.float().mean().item(),
        "kendall_tau_b": taus_t.mean().item(),
        "kendall_tau_b_max": sum(tau_max) / len(tau_max),
        "_per_list": {"pairs": pairs_per_list, "right": right_per_list, "exact": exact, "tau_b": taus_t},
    }


def score_rank_lists(scorer: RewardScorer, views: Sequence[RankListView], *, batch_size: int | None = None
                     ) -> tuple[torch.Tensor, RankPairs, list[list[int]], list[bool]]:
    """Score every text of ``views`` once: ``(scores (n_texts,), pairs, seqs, truncated)``."""
    texts = [t for v in views for t in v.texts()]
    seqs, truncated = scorer.encode(texts)
    pairs = build_rank_pairs([v.tiers for v in views], [v.id for v in views])
    scores = scorer.score_encoded(seqs, batch_size=batch_size)
    return scores, pairs, seqs, truncated


RANKING_KEYS = ("pairwise_accuracy", "pairwise_accuracy_list_mean", "exact_order_accuracy", "kendall_tau_b",
                "kendall_tau_b_max")


def evaluate_text_scorer(scorer: Any, lists: Iterable[Any], *, on_invalid: str = "error") -> dict[str, Any]:
    """The ranking figures of any text scorer on ``lists``, by the code that ranks the reward model.

    ``scorer``: anything with ``score_texts(texts) -> (n,)`` scores, higher = better (a
    :class:`RewardScorer`, :class:`rlhf.reward.baseline.LinearBaseline`); it reads ``prompt + text``.
    Returns ``{n_lists, n_lists_skipped, n_pairs, pairwise_accuracy, pairwise_accuracy_list_mean,
    exact_order_accuracy, kendall_tau_b, kendall_tau_b_max}``; lists are checked (and skipped when
    ``on_invalid='skip'``) as by :func:`evaluate_reward_model`.
    """
    return evaluate_text_scorers({"scorer": scorer}, lists, on_invalid=on_invalid)["scorer"]


def evaluate_text_scorers(scorers: Mapping[str, Any], lists: Iterable[Any], *, on_invalid: str = "error"
                          ) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_text_scorer` of each of ``scorers`` (``{name: scorer}``) on the same valid lists."""
    views, skipped = prepare_lists(lists, on_invalid)
    if not views:
        raise ValueError(f"evaluate_text_scorer: no valid rank list to evaluate (skipped: {skipped or 'none'})")
    texts = [t for v in views for t in v.texts()]
    pairs = build_rank_pairs([v.tiers for v in views], [v.id for v in views])
    out = {}
    for name, scorer in scorers.items():
        scores = torch.as_tensor(scorer.score_texts(texts), dtype=torch.float32).reshape(-1)
        ranking = ranking_metrics(scores, pairs)
        out[name] = {"n_lists": len(views), "n_lists_skipped": sum(skipped.values()), "n_pairs": pairs.n_pairs,
                     **{k: ranking[k] for k in RANKING_KEYS}}
    return out


def evaluate_reward_model(scorer: RewardScorer, lists: Iterable[Any], *, on_invalid: str = "error",
                          batch_size: int | None = None, include_texts: bool = True) -> dict[str, Any]:
    """Evaluate ``scorer`` on ALL ``lists`` (no sampling, no last-batch-only).

    Returns plain data::

        {"metrics": {n_lists, n_lists_skipped, skipped_<reason>, n_texts, n_pairs,
                     n_truncated_texts, truncated_fraction, pairwise_accuracy,
                     pairwise_accuracy_list_mean, exact_order_accuracy, kendall_tau_b,
                     kendall_tau_b_max, reward_mean, reward_std, reward_mean_best_tier,
                     reward_mean_worst_tier},
         "per_text": [{list_id, tier, n_tiers, score, n_tokens, truncated, text}, ...],
         "per_list": [{list_id, k, n_tiers, n_pairs, pairs_correct, exact_order, kendall_tau_b}, ...],
         "by_list_length": [{k, n_lists, n_pairs, pairwise_accuracy, exact_order_accuracy,
                             kendall_tau_b}, ...]}

    ``exact_order_accuracy`` is the published metric (a list counts only if all its cross-tier
    pairs are right); ``kendall_tau_b`` is tau-b per list against the tiers, averaged over lists.
    Invalid lists raise (``on_invalid='error'``) or are skipped and counted (``'skip'``).
    """
    views, skipped = prepare_lists(lists, on_invalid)
    if not views:
        raise ValueError(f"evaluate_reward_model: no valid rank list to evaluate (skipped: {skipped or 'none'})")
    scores, pairs, seqs, truncated = score_rank_lists(scorer, views, batch_size=batch_size)
    ranking = ranking_metrics(scores, pairs)
    per = ranking.pop("_per_list")
    best = scores[pairs.text_tier == 0]
    worst_mask = torch.zeros_like(pairs.text_tier, dtype=torch.bool)
    for b, v in enumerate(views):
        worst_mask |= (pairs.text_list == b) & (pairs.text_tier == len(v.tiers) - 1)
    metrics: dict[str, Any] = {
        "n_lists": len(views),
        "n_lists_skipped": sum(skipped.values()),
        **{f"skipped_{reason}": n for reason, n in sorted(skipped.items())},
        "n_texts": pairs.n_texts,
        "n_pairs": pairs.n_pairs,
        "n_truncated_texts": sum(truncated),
        "truncated_fraction": sum(truncated) / len(truncated),
        **ranking,
        "reward_mean": scores.mean().item(),
        "reward_std": scores.std(unbiased=False).item(),
        "reward_mean_best_tier": best.mean().item(),
        "reward_mean_worst_tier": scores[worst_mask].mean().item(),
    }
    per_text = []
    if include_texts:
        texts = [t for v in views for t in v.texts()]
        for i in range(pairs.n_texts):
            b = int(pairs.text_list[i])
            per_text.append({"list_id": views[b].id, "tier": int(pairs.text_tier[i]), "n_tiers": len(views[b].tiers),
                             "score": float(scores[i]), "n_tokens": len(seqs[i]), "truncated": truncated[i],
                             "text": texts[i]})
    per_list = [{"list_id": v.id, "k": sum(len(t) for t in v.tiers), "n_tiers": len(v.tiers),
                 "n_pairs": int(per["pairs"][b]), "pairs_correct": int(per["right"][b]),
                 "exact_order": bool(per["exact"][b]), "kendall_tau_b": float(per["tau_b"][b])}
                for b, v in enumerate(views)]
    return {"metrics": metrics, "per_text": per_text, "per_list": per_list, "by_list_length": by_list_length(per_list)}


def by_list_length(per_list: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group per-list rows by K (texts in the list): accuracy, exact order and tau-b per K, ascending."""
    groups: dict[int, list[Mapping[str, Any]]] = collections.defaultdict(list)
    for row in per_list:
        groups[row["k"]].append(row)
    table = []
    for k in sorted(groups):
        rows = groups[k]
        n_pairs = sum(r["n_pairs"] for r in rows)
        table.append({"k": k, "n_lists": len(rows), "n_pairs": n_pairs,
                      "pairwise_accuracy": sum(r["pairs_correct"] for r in rows) / n_pairs,
                      "exact_order_accuracy": sum(r["exact_order"] for r in rows) / len(rows),
                      "kendall_tau_b": sum(r["kendall_tau_b"] for r in rows) / len(rows)})
    return table
