"""The listwise rank loss of the reward model, over a batched representation of rank lists.

A batch of B rank lists is flattened into one vector of scores, list after list, tier after tier
(best tier first), text after text::

    scores      (n_texts,)  one score per text; each text forwarded once per step
    text_list   (n_texts,)  index of the list a text belongs to, in [0, B)
    text_tier   (n_texts,)  tier of the text within its list (0 = best)
    winner      (n_pairs,)  index into ``scores`` of the better text of each cross-tier pair
    loser       (n_pairs,)  index of the worse text
    pair_list   (n_pairs,)  index of the list the pair belongs to
    tier_gap    (n_pairs,)  tier(loser) - tier(winner) >= 1

Every pair of texts in different tiers of a list is formed from those scores; texts tied in one
tier are never compared. Means are taken per list first, then over lists, so a list of K=9 counts
as much as a list of K=2 and lists are never expanded into independent pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence, Sized

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RankPairs:
    """Index tensors of the cross-tier pairs of a batch of rank lists (see the module docstring)."""

    winner: torch.Tensor     # (n_pairs,) long
    loser: torch.Tensor      # (n_pairs,) long
    pair_list: torch.Tensor  # (n_pairs,) long
    tier_gap: torch.Tensor   # (n_pairs,) float
    text_list: torch.Tensor  # (n_texts,) long
    text_tier: torch.Tensor  # (n_texts,) long
    n_lists: int

    @property
    def n_texts(self) -> int:
        return int(self.text_list.numel())

    @property
    def n_pairs(self) -> int:
        return int(self.winner.numel())

    def to(self, device: torch.device | str) -> "RankPairs":
        """These index tensors on ``device`` (``self`` when they are there already)."""
        if self.winner.device == torch.device(device):
            return self
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})


def build_rank_pairs(lists: Sequence[Sequence[Sized | int]], list_ids: Sequence[str] | None = None) -> RankPairs:
    """Index tensors for ``lists``: each a list of tiers (best first), a tier being its texts or their count.

    Texts are numbered in the flattening order list -> tier -> text; for each list every
    (winner, loser) with tier(winner) < tier(loser) becomes a pair. Every list must have at least
    two tiers, none empty (lists that passed :func:`rlhf.data.ranklist.check_tiers`); one that has
    not raises ``ValueError`` naming ``list_ids[i]`` (or the position ``i``).

    Example: ``[[["a"], ["b", "c"]]]`` -> texts a=0, b=1, c=2; pairs (0,1), (0,2); b, c not compared.
    """
    text_list, text_tier, winner, loser, pair_list, gaps = [], [], [], [], [], []
    offset = 0
    for i, tiers in enumerate(lists):
        sizes = [t if isinstance(t, int) else len(t) for t in tiers]
        if len(sizes) < 2 or min(sizes) < 1:
            name = list_ids[i] if list_ids is not None else i
            raise ValueError(f"build_rank_pairs: rank list {name!r} has tier sizes {sizes}; expected at least two "
                             "tiers, none empty (check lists with rlhf.data.ranklist.check_tiers first)")
        tier = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))  # (k,)
        w, l = torch.nonzero(tier[:, None] < tier[None, :], as_tuple=True)  # cross-tier pairs, best first
        text_list.append(torch.full((tier.numel(),), i, dtype=torch.long))
        text_tier.append(tier)
        winner.append(w + offset)
        loser.append(l + offset)
        pair_list.append(torch.full((w.numel(),), i, dtype=torch.long))
        gaps.append((tier[l] - tier[w]).float())
        offset += tier.numel()
    if not text_list:
        raise ValueError("build_rank_pairs: no rank lists given")
    return RankPairs(winner=torch.cat(winner), loser=torch.cat(loser), pair_list=torch.cat(pair_list),
                     tier_gap=torch.cat(gaps), text_list=torch.cat(text_list), text_tier=torch.cat(text_tier),
                     n_lists=len(text_list))


def per_list_mean(values: torch.Tensor, index: torch.Tensor, n_lists: int) -> torch.Tensor:
    """Mean of ``values`` (n,) grouped by ``index`` (n,) in [0, n_lists) -> (n_lists,); differentiable.

    Every list must own at least one value (a list without any gives NaN).
    """
    sums = torch.zeros(n_lists, dtype=values.dtype, device=values.device).index_add(0, index, values)
    counts = torch.zeros(n_lists, dtype=values.dtype, device=values.device).index_add(
        0, index, torch.ones_like(values))
    return sums / counts


def pair_margins(pairs: RankPairs, margin: float | torch.Tensor = 0.0, per_tier_gap: bool = False) -> torch.Tensor:
    """Margin m of each pair (n_pairs,): ``margin`` (scalar or per pair), times the tier gap when asked."""
    m = torch.as_tensor(margin, dtype=torch.float32).expand(pairs.n_pairs)
    return m * pairs.tier_gap if per_tier_gap else m


def rank_loss(scores: torch.Tensor, pairs: RankPairs, *, margin: float | torch.Tensor = 0.0,
              margin_per_tier_gap: bool = False, center_coef: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Listwise InstructGPT rank loss with optional margin and reward centring.

    For B lists, list b with cross-tier pairs P_b and texts T_b::

        L = 1/B * sum_b [ 1/|P_b| * sum_{(w,l) in P_b} -log sigmoid(r_w - r_l - m_wl) ]
          + c   * 1/B * sum_b [ 1/|T_b| * sum_{i in T_b} r_i^2 ]

    with m_wl = ``margin`` (times tier(l) - tier(w) when ``margin_per_tier_gap``) and
    c = ``center_coef``. For one pair per list and c = 0 this is TRL's RewardTrainer loss; TRL
    centres with ``(r_w + r_l)^2`` per pair, the listwise analogue used here is the mean of r^2
    over the list's texts (each text counted once, not once per pair it appears in).

    scores: (n_texts,) float, one per text in the order of ``pairs``. Returns the scalar loss and
    detached statistics: ``loss``, ``rank_loss``, ``center_loss``, ``pair_accuracy`` (fraction of
    all pairs with r_w > r_l; a tie r_w == r_l counts as wrong), ``exact_order_accuracy`` (lists
    with every pair right), ``margin_mean`` (mean r_w - r_l), ``reward_mean``, ``reward_std``.
    """
    if scores.dim() != 1 or scores.numel() != pairs.n_texts:
        raise ValueError(f"rank_loss: scores of shape {tuple(scores.shape)}; expected ({pairs.n_texts},), one "
                         "score per text of the rank lists")
    pairs = pairs.to(scores.device)  # built on the CPU; the scores are where the model is
    m = pair_margins(pairs, margin, margin_per_tier_gap).to(scores.device, scores.dtype)
    diff = scores[pairs.winner] - scores[pairs.loser]  # (n_pairs,)
    pair_loss = -F.logsigmoid(diff - m)  # (n_pairs,)
    ranking = per_list_mean(pair_loss, pairs.pair_list, pairs.n_lists).mean()
    center = per_list_mean(scores.pow(2), pairs.text_list, pairs.n_lists).mean()
    loss = ranking + center_coef * center if center_coef else ranking
    with torch.no_grad():
        correct = diff > 0
        list_ok = list_all_correct(correct, pairs)
        stats = {
            "loss": loss.item(),
            "rank_loss": ranking.item(),
            "center_loss": center.item(),
            "pair_accuracy": correct.float().mean().item(),
            "exact_order_accuracy": list_ok.float().mean().item(),
            "margin_mean": diff.mean().item(),
            "reward_mean": scores.mean().item(),
            "reward_std": scores.std(unbiased=False).item(),
        }
    return loss, stats


def list_all_correct(pair_correct: torch.Tensor, pairs: RankPairs) -> torch.Tensor:
    """(n_lists,) bool: every cross-tier pair of the list is ordered right (``pair_correct``: (n_pairs,) bool)."""
    wrong = torch.zeros(pairs.n_lists, dtype=torch.long, device=pair_correct.device).index_add(
        0, pairs.pair_list.to(pair_correct.device), (~pair_correct).long())
    return wrong == 0
