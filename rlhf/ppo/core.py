"""PPO's arithmetic: pure functions over tensors and masks, and the KL-coefficient controllers.

Conventions shared by every function here:

* token tensors are ``(batch, gen_len)``: one column per *response* token (the action taken);
* ``mask`` is 1 (or True) on real response tokens: every token up to and including the first
  EOS, and 0 on the padding after it;
* "masked mean" means the mean over the tokens where ``mask`` is 1, across the whole batch
  (a per-token average, so long responses weigh more than short ones, as in TRL and OpenAI's
  lm-human-preferences).

Nothing here touches a model, a tokenizer or an RNG, so every function is tested against
values worked out by hand in ``tests/rlhf/ppo/test_ppo_core.py``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

KL_ESTIMATORS = ("k1", "k3", "low_var", "abs", "mse")
# Sums a tensor over the processes of a data-parallel run (the identity on one process); injected so
# that the statistics below can be global without this module knowing about processes.
Reduce = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- log-probs


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Log-probability of each label under ``softmax(logits)``.

    ``logp[b, t] = logits[b, t, labels[b, t]] - logsumexp_v(logits[b, t, v])``.
    Shapes: logits ``(batch, gen_len, vocab)``, labels ``(batch, gen_len)`` -> ``(batch, gen_len)``.
    No reduction. Gathers one logit per position instead of materialising a full log-softmax.
    """
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # (batch, gen_len)
    return picked - torch.logsumexp(logits, dim=-1)


class _LogprobsAndEntropy(torch.autograd.Function):
    """Token log-probs and entropies from logits, few passes over the vocabulary (:func:`logprobs_and_entropy`)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor):
        lse = torch.logsumexp(logits, dim=-1)  # (...,)
        probs = torch.softmax(logits, dim=-1)  # (..., V) the one full-vocabulary tensor kept for the backward
        entropy = lse - (probs * logits).sum(-1)  # H = lse - sum_v p_v z_v
        logprobs = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - lse
        ctx.save_for_backward(logits, probs, lse - entropy, labels)
        ctx.set_materialize_grads(False)
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs: torch.Tensor | None, grad_entropy: torch.Tensor | None):
        logits, probs, shift, labels = ctx.saved_tensors
        # d logp_y / dz = onehot(y) - p;  dH / dz = -p * (z - lse + H) = -p * (z - shift)
        if grad_entropy is not None:
            grad = (logits - shift.unsqueeze(-1)).mul_(grad_entropy.unsqueeze(-1))
            if grad_logprobs is not None:
                grad.add_(grad_logprobs.unsqueeze(-1))
            grad.mul_(probs).neg_()
        elif grad_logprobs is not None:
            grad = probs * (-grad_logprobs).unsqueeze(-1)
        else:
            return None, None
        if grad_logprobs is not None:
            grad.scatter_add_(-1, labels.unsqueeze(-1), grad_logprobs.unsqueeze(-1))
        return grad, None


def logprobs_and_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each label and the entropy of each position's distribution, with gradients.

    ``logp[b, t] = logits[b, t, labels[b, t]] - logsumexp_v(logits[b, t, v])`` (as
    :func:`logprobs_from_logits`) and ``H[b, t] = -sum_v p_v log p_v = lse - sum_v p_v logits_v``.
    Shapes: logits ``(batch, gen_len, vocab)``, labels ``(batch, gen_len)`` -> two ``(batch, gen_len)``.
    One softmax is the only full-vocabulary tensor kept; the backward is written out
    (``dlogp/dz = onehot - p``, ``dH/dz = -p (log p + H)``), about half the passes over the
    vocabulary of a log-softmax, its exponential and their autograd. Equal to
    :func:`entropy_from_logprobs` of the log-softmax up to float rounding.
    """
    return _LogprobsAndEntropy.apply(logits, labels)


def entropy_from_logprobs(all_logprobs: torch.Tensor) -> torch.Tensor:
    """Entropy ``H = -sum_v p_v log p_v`` from a full log-softmax (cheaper when it exists anyway).

    Shapes: ``(batch, gen_len, vocab)`` -> ``(batch, gen_len)``. No reduction.
    """
    return -(all_logprobs.exp() * all_logprobs).sum(-1)


# --------------------------------------------------------------------------- masked statistics


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None, *,
                count: torch.Tensor | float | None = None, reduce: Reduce | None = None) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is 1: ``sum(values * mask) / sum(mask)``.

    ``dim=None`` reduces over every element (a scalar); an int reduces that dimension only.
    An all-zero mask gives 0 rather than NaN (nothing to average).
    Data parallel: ``count`` replaces ``sum(mask)`` as the divisor (a loss over this process's share
    of a minibatch, divided by the whole minibatch's token count, keeps its gradient); ``reduce``
    sums numerator and divisor over the processes first (statistics without gradient).
    """
    mask = mask.to(values.dtype)
    total = (values * mask).sum(dim) if dim is not None else (values * mask).sum()
    if count is not None:
        return total / count
    n = mask.sum(dim) if dim is not None else mask.sum()
    if reduce is not None:
        total, n = reduce(total), reduce(n)
    return total / n.clamp(min=1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True, *,
               reduce: Reduce | None = None) -> torch.Tensor:
    """Variance of ``values`` over the elements where ``mask`` is 1 (a scalar).

    ``var = masked_mean((values - mu)^2) * n / (n - 1)`` with ``mu = masked_mean(values)`` and
    ``n = sum(mask)``; the Bessel factor ``n / (n - 1)`` only when ``unbiased`` (and ``n > 1``).
    ``reduce``: over every process's elements (see :func:`masked_mean`).
    """
    mean = masked_mean(values, mask, reduce=reduce)
    var = masked_mean((values - mean) ** 2, mask, reduce=reduce)
    if unbiased:
        n = mask.to(values.dtype).sum()
        if reduce is not None:
            n = reduce(n)
        if n > 1:
            var = var * n / (n - 1)
    return var


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8, *,
                  reduce: Reduce | None = None) -> torch.Tensor:
    """Standardise ``values`` with the masked mean and (unbiased) variance of the batch.

    ``(values - mu) / sqrt(var + eps)``; with ``shift_mean=False`` the mean is added back
    (only the scale changes, used for rewards). Same shape as ``values``; masked-out entries are
    transformed too, so callers zero them afterwards when they matter. ``reduce``: the batch is
    every process's share (see :func:`masked_mean`).
    """
    mean, var = masked_mean(values, mask, reduce=reduce), masked_var(values, mask, reduce=reduce)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    return whitened if shift_mean else whitened + mean


# --------------------------------------------------------------------------- rewards and advantages


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from log-probs of the sampled tokens.

    With ``d = logprobs - ref_logprobs`` (``log pi/pi_ref`` of the sampled token):

    * ``k1``: ``d`` (unbiased, can be negative per token);
    * ``k3`` / ``low_var``: ``exp(-d) - 1 + d`` (unbiased, >= 0, lower variance; Schulman 2020);
    * ``abs``: ``|d|``;
    * ``mse``: ``0.5 * d^2``.

    Shapes: ``(batch, gen_len)`` -> ``(batch, gen_len)``. No reduction, no masking.
    """
    d = logprobs - ref_logprobs
    if estimator == "k1":
        return d
    if estimator in ("k3", "low_var"):
        return torch.expm1(-d) + d
    if estimator == "abs":
        return d.abs()
    if estimator == "mse":
        return 0.5 * d.square()
    raise ValueError(f"kl estimator {estimator!r} is not one of {', '.join(KL_ESTIMATORS)}")


def compute_rewards(scores: torch.Tensor, kl: torch.Tensor, kl_coef: float, mask: torch.Tensor) -> torch.Tensor:
    """Per-token PPO rewards: ``-kl_coef * kl`` on every real token, plus the score on the last one.

    ``r[b, t] = -kl_coef * kl[b, t] * mask[b, t] + scores[b] * [t == last real token of b]``.
    Shapes: scores ``(batch,)``, kl and mask ``(batch, gen_len)`` -> ``(batch, gen_len)``.
    A row whose mask is empty gets its score at position 0.
    """
    mask = mask.to(kl.dtype)
    rewards = -kl_coef * kl * mask  # (batch, gen_len)
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # (batch,) index of the last real token
    return rewards.scatter_add(1, last.unsqueeze(1), scores.unsqueeze(1).to(rewards.dtype))


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over response tokens.

    ``delta_t = r_t + gamma * V_{t+1} * m_{t+1} - V_t`` (the value after the last real token is
    0: the episode ends there), ``A_t = sum_{k>=t} (gamma * lam)^(k-t) * delta_k``,
    ``returns_t = A_t + V_t``. Masked positions get advantage 0 and return 0.

    Shapes: rewards, values, mask ``(batch, gen_len)`` -> ``(advantages, returns)``, each
    ``(batch, gen_len)``. The backward recursion is one matrix product with the upper-triangular
    discount matrix ``D[t, k] = (gamma * lam)^(k - t)`` for ``k >= t``, so there is no Python loop
    over tokens; ``gen_len`` is small (tens), so the ``(gen_len, gen_len)`` matrix costs nothing.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)  # (batch, gen_len)
    deltas = (rewards + gamma * next_values - values) * mask  # (batch, gen_len)
    steps = torch.arange(deltas.shape[1], device=deltas.device, dtype=deltas.dtype)
    lag = steps.unsqueeze(0) - steps.unsqueeze(1)  # lag[t, k] = k - t
    discount = torch.where(lag >= 0, torch.as_tensor(gamma * lam, dtype=deltas.dtype) ** lag.clamp(min=0),
                           torch.zeros((), dtype=deltas.dtype))  # (gen_len, gen_len)
    advantages = (deltas @ discount.T) * mask  # A[b, t] = sum_k D[t, k] delta[b, k]
    returns = (advantages + values) * mask
    return advantages, returns


# --------------------------------------------------------------------------- losses


class PolicyLoss(NamedTuple):
    """Result of :func:`policy_loss`: the scalar loss and its diagnostics (all detached but ``loss``)."""

    loss: torch.Tensor  # scalar, differentiable
    clipfrac: torch.Tensor  # share of tokens where the clipped term was the active one
    approxkl: torch.Tensor  # 0.5 * masked_mean((logp - old_logp)^2)
    ratio: torch.Tensor  # masked mean of pi / pi_old


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float = 0.2, count: torch.Tensor | float | None = None
                ) -> PolicyLoss:
    """PPO's clipped surrogate objective, as a loss to minimise.

    ``ratio = exp(logp - old_logp)``,
    ``loss = masked_mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))``,
    ``clipfrac = masked_mean([-A * clip(ratio) > -A * ratio])`` (tokens whose gradient is cut),
    ``approxkl = 0.5 * masked_mean((logp - old_logp)^2)``.
    Shapes: every tensor ``(batch, gen_len)``; reduction: masked mean over all real tokens
    (divided by ``count`` instead of their number when given: see :func:`masked_mean`).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask, count=count)
    with torch.no_grad():
        clipfrac = masked_mean((clipped > unclipped).to(ratio.dtype), mask, count=count)
        approxkl = 0.5 * masked_mean(log_ratio.square(), mask, count=count)
        ratio_mean = masked_mean(ratio, mask, count=count)
    return PolicyLoss(loss, clipfrac, approxkl, ratio_mean)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, cliprange_value: float = 0.2, count: torch.Tensor | float | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss and its clip fraction.

    ``v_clip = old_v + clip(v - old_v, -eps_v, eps_v)``,
    ``loss = 0.5 * masked_mean(max((v - R)^2, (v_clip - R)^2))``,
    ``clipfrac = masked_mean([(v_clip - R)^2 > (v - R)^2])``.
    Shapes: every tensor ``(batch, gen_len)``; returns ``(loss, clipfrac)`` scalars, the loss
    differentiable, the clip fraction detached.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_err = (values - returns).square()
    clipped_err = (clipped_values - returns).square()
    loss = 0.5 * masked_mean(torch.maximum(unclipped_err, clipped_err), mask, count=count)
    with torch.no_grad():
        clipfrac = masked_mean((clipped_err > unclipped_err).to(values.dtype), mask, count=count)
    return loss, clipfrac


# --------------------------------------------------------------------------- KL controllers


class AdaptiveKLController:
    """Adaptive KL coefficient of Ziegler et al. 2019 (``lm-human-preferences``).

    After each rollout: ``e = clip(kl / target - 1, -0.2, 0.2)``,
    ``kl_coef <- kl_coef * (1 + e * n_steps / horizon)``, where ``kl`` is the rollout's mean
    KL per sample (nats) and ``n_steps`` the number of episodes in it. The coefficient grows when
    the policy drifts past ``target`` and shrinks when it stays closer.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float):
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Adapt the coefficient to the observed KL; returns the new value."""
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class FixedKLController:
    """A constant KL coefficient: :meth:`update` leaves it unchanged."""

    def __init__(self, kl_coef: float):
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
