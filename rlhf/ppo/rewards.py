"""Reward functions: the score PPO maximises, behind one small protocol.

A reward function has ``score(query_response_ids, attention_mask, texts) -> (batch,) tensor``:

* ``query_response_ids`` ``(batch, P + G)``: left-padded ``[BOS] + prompt`` then the completion,
  padded after its first EOS (the policy tokenizer's ids);
* ``attention_mask`` ``(batch, P + G)``: 1 on those real tokens;
* ``texts``: the decoded ``prompt + completion`` of each row (what a person would read).

Implementations: :class:`RewardModelReward` (the reward model saved in a directory, scored by the
one scorer :class:`rlhf.reward.model.RewardScorer`; the default) and :class:`JudgeReward` (the
evaluation judge, only when asked for). A reward function with ``state_dict`` /
``load_state_dict`` (e.g. running score statistics) is checkpointed with the PPO run.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import torch
from transformers import PreTrainedTokenizerBase

from rlhf.evaluation.text_metrics import ngrams
from rlhf.models.positions import max_positions
from rlhf.ppo.model import use_fast_gelu
from rlhf.reward.model import STATS_FILE, RewardScorer, load_reward_model


@runtime_checkable
class RewardFunction(Protocol):
    def score(self, query_response_ids: torch.Tensor, attention_mask: torch.Tensor,
              texts: Sequence[str]) -> torch.Tensor:
        """One score per row, ``(batch,)`` float."""
        ...


def reward_model_inputs(query_response_ids: torch.Tensor, attention_mask: torch.Tensor, eos_token_id: int,
                        pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-pack PPO sequences into the reward model's format ``[BOS] + text + [EOS]``, right-padded.

    Each row's real tokens (one contiguous run: left padding before, padding after EOS) are moved
    to column 0, and an EOS is appended to a completion that has none, so the RM sees what it was
    trained on. Vectorised (a gather), no loop over rows. Shapes ``(batch, W)`` ->
    ``(input_ids, attention_mask)`` of ``(batch, W')`` with ``W' <= W + 1``.
    """
    width = query_response_ids.shape[1]
    lengths = attention_mask.long().sum(-1)  # (batch,)
    start = attention_mask.long().argmax(-1)  # (batch,) first real token
    last_token = query_response_ids.gather(1, (start + lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
    needs_eos = (last_token != eos_token_id).long()  # (batch,)
    new_width = int((lengths + needs_eos).max())
    cols = torch.arange(new_width, device=query_response_ids.device).unsqueeze(0)  # (1, W')
    src = (start.unsqueeze(1) + cols).clamp(max=width - 1)  # (batch, W')
    ids = query_response_ids.gather(1, src)
    ids = torch.where(cols < lengths.unsqueeze(1), ids, torch.full_like(ids, pad_token_id))
    ids = torch.where((cols == lengths.unsqueeze(1)) & needs_eos.bool().unsqueeze(1),
                      torch.full_like(ids, eos_token_id), ids)
    mask = (cols < (lengths + needs_eos).unsqueeze(1)).long()
    return ids, mask


def batch_ngram_overlap(responses: torch.Tensor, mask: torch.Tensor, n: int = 2) -> torch.Tensor:
    """How much each completion repeats the rest of its rollout, in [0, 1]: ``(batch,)``.

    The mean over a completion's token n-grams (its real tokens, ``mask``) of the share of the
    *other* completions that contain the same n-gram; an n-gram the completion already used
    earlier counts 1. A rollout where every completion is the same phrase scores 1 everywhere;
    completions sharing nothing score 0, as does one shorter than ``n`` tokens. Subtracted
    (times ``ppo.novelty_coef``) from the score, it makes a phrase's reward fall the more of the
    rollout uses it: a frequency-dependent counter to the policy collapsing onto one phrase.
    """
    rows = [[int(t) for t, m in zip(ids, keep) if m] for ids, keep in zip(responses.tolist(), mask.tolist())]
    grams = [ngrams(row, n) for row in rows]
    holders = Counter(gram for g in grams for gram in set(g))  # completions holding each n-gram
    others = max(len(rows) - 1, 1)
    out = []
    for g in grams:
        seen: set[tuple] = set()
        total = 0.0
        for gram in g:
            total += 1.0 if gram in seen else (holders[gram] - 1) / others
            seen.add(gram)
        out.append(total / len(g) if g else 0.0)
    return torch.tensor(out, dtype=torch.float32)


class RunningMoments:
    """Running mean and standard deviation of every score seen so far (Chan et al. parallel update)."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, xs: torch.Tensor) -> None:
        xs = xs.detach().double().flatten()
        n = xs.numel()
        if n == 0:
            return
        batch_mean = float(xs.mean())
        batch_m2 = float(((xs - batch_mean) ** 2).sum())
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 1.0

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), float(state["mean"]), float(state["m2"])


class RewardModelReward:
    """The reward model as PPO's reward function: a :class:`rlhf.reward.model.RewardScorer` plus
    what PPO needs of it.

    ``normalization``: ``stats`` = ``(s - mean) / std`` from ``reward_stats.json`` beside the
    model (the scorer's own rule, :meth:`RewardScorer.normalize`); ``running`` = the same with a
    running estimate over every score seen so far (checkpointed with the run through
    ``state_dict``); ``auto`` = stats when the file exists, else running; ``none`` = raw scores.

    When the reward model's tokenizer has the policy's vocabulary, the policy's token ids are
    scored directly (re-packed by :func:`reward_model_inputs`); otherwise ``texts`` are
    re-tokenised as ``[BOS] + text + [EOS]`` with the reward model's tokenizer.
    """

    def __init__(self, scorer: RewardScorer, policy_tokenizer: PreTrainedTokenizerBase, *,
                 normalization: str = "auto", source: str = "reward model"):
        self.scorer = scorer
        self.shared_vocab = scorer.tokenizer.get_vocab() == policy_tokenizer.get_vocab()
        if normalization == "auto":
            normalization = "stats" if scorer.stats is not None else "running"
        if normalization == "stats" and scorer.stats is None:
            raise ValueError(f"{source}: score_normalization 'stats' needs {STATS_FILE} beside the reward "
                             f"model; accepted instead: 'running', 'auto' or 'none'")
        self.normalization = normalization
        self.running = RunningMoments()
        # data parallel: maps this process's raw scores to the whole rollout's, so that the running
        # moments are those of every process's scores (set by the trainer; None on one process)
        self.share_scores = None

    @classmethod
    def from_pretrained(cls, directory: str | Path, policy_tokenizer: PreTrainedTokenizerBase, *,
                        normalization: str = "auto", batch_size: int = 64) -> "RewardModelReward":
        """Load the reward model saved in ``directory`` (:func:`rlhf.reward.model.load_reward_model`)."""
        scorer = load_reward_model(directory, batch_size=batch_size)
        # PPO scores whatever fits the reward model's positions (its training max_length may be shorter)
        scorer.max_length = max_positions(scorer.model) or scorer.max_length
        use_fast_gelu(scorer.model)  # the fused tanh-GELU: same function, faster (one RM forward per rollout)
        return cls(scorer, policy_tokenizer, normalization=normalization, source=str(directory))

    def raw_scores(self, query_response_ids: torch.Tensor, attention_mask: torch.Tensor,
                   texts: Sequence[str]) -> torch.Tensor:
        """Unnormalised reward-model scores ``(batch,)`` on the CPU."""
        if self.shared_vocab:
            tok = self.scorer.tokenizer
            ids, mask = reward_model_inputs(query_response_ids, attention_mask, tok.eos_token_id, tok.pad_token_id)
            return self.scorer.score_ids(ids, mask).cpu()
        return self.scorer.score_texts(texts)

    def score(self, query_response_ids: torch.Tensor, attention_mask: torch.Tensor,
              texts: Sequence[str]) -> torch.Tensor:
        """Normalised scores ``(batch,)``."""
        raw = self.raw_scores(query_response_ids, attention_mask, texts)
        if self.normalization == "stats":
            return self.scorer.normalize(raw)
        if self.normalization == "running":
            self.running.update(raw if self.share_scores is None else self.share_scores(raw))
            # floored: the first rollouts of a fresh run may all score the same
            return (raw - self.running.mean) / max(self.running.std, 1e-6)
        return raw

    def state_dict(self) -> dict:
        return {"running": self.running.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.running.load_state_dict(state["running"])


class JudgeReward:
    """The evaluation judge as a reward: P(positive) of ``prompt + completion`` in [0, 1]."""

    def __init__(self, judge, batch_size: int = 64):
        self.judge = judge
        self.batch_size = batch_size

    @classmethod
    def from_config(cls, judge_cfg=None, batch_size: int = 64) -> "JudgeReward":
        from rlhf.judge.config import JudgeConfig  # lazily: only needed when asked for
        from rlhf.judge.loader import load_judge

        return cls(load_judge(judge_cfg if judge_cfg is not None else JudgeConfig()), batch_size=batch_size)

    def score(self, query_response_ids: torch.Tensor, attention_mask: torch.Tensor,
              texts: Sequence[str]) -> torch.Tensor:
        scores: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            scores.extend(self.judge.score(list(texts[i:i + self.batch_size])))
        return torch.tensor(scores, dtype=torch.float32)


def build_reward_fn(cfg, policy_tokenizer: PreTrainedTokenizerBase, *, reward_model_dir: str | Path | None = None,
                    judge_cfg=None) -> RewardFunction:
    """The reward function ``cfg.reward_source`` names (``cfg``: a :class:`rlhf.ppo.config.PPOConfig`)."""
    if cfg.reward_source == "judge":
        return JudgeReward.from_config(judge_cfg, batch_size=cfg.reward_batch_size)
    if reward_model_dir is None:
        raise ValueError("ppo.reward_source 'reward_model' needs reward_model_dir (e.g. models/reward_model)")
    return RewardModelReward.from_pretrained(reward_model_dir, policy_tokenizer,
                                             normalization=cfg.score_normalization, batch_size=cfg.reward_batch_size)
