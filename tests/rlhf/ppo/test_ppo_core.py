"""PPO arithmetic against values worked out by hand."""
import math

import pytest
import torch

from rlhf.ppo.core import (AdaptiveKLController, FixedKLController, compute_gae, compute_rewards,
                           entropy_from_logprobs, kl_penalty, logprobs_from_logits, masked_mean, masked_var,
                           masked_whiten, policy_loss, value_loss)

approx = lambda values, **kw: pytest.approx(values, abs=1e-5, **kw)  # noqa: E731


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_logprobs_from_logits_matches_log_softmax_gather():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 7, generator=gen)
    labels = torch.randint(0, 7, (2, 3), generator=gen)
    expected = torch.log_softmax(logits, -1).gather(-1, labels[..., None])[..., 0]
    assert torch.allclose(logprobs_from_logits(logits, labels), expected, atol=1e-6)
    # a 2-token vocabulary by hand: logits (0, log 3) -> p = (1/4, 3/4)
    two = torch.tensor([[[0.0, math.log(3.0)]]])
    assert logprobs_from_logits(two, torch.tensor([[1]])).item() == approx(math.log(0.75))


def test_entropy_from_logprobs_by_hand():
    """As the update computes it: from the log-softmax of the (temperature-scaled) logits."""
    uniform = torch.log_softmax(torch.zeros(1, 1, 4), -1)
    assert entropy_from_logprobs(uniform).item() == approx(math.log(4))
    p = torch.tensor([0.5, 0.25, 0.25])
    # H = 0.5 ln 2 + 2 * 0.25 ln 4 = 1.5 ln 2; logits shifted by a constant give the same entropy
    assert entropy_from_logprobs(torch.log_softmax((p.log() + 3.0).view(1, 1, 3), -1)).item() == approx(
        1.5 * math.log(2))
    assert entropy_from_logprobs(p.log().view(1, 1, 3)).item() == approx(1.5 * math.log(2))


def test_masked_mean_var_whiten_by_hand():
    values = t([1.0, 3.0], [5.0, 100.0])
    mask = t([1, 1], [1, 0])
    assert masked_mean(values, mask).item() == approx(3.0)
    assert masked_mean(values, mask, dim=1).tolist() == approx([2.0, 5.0])
    # squared deviations 4, 0, 4 -> biased 8/3, unbiased 4
    assert masked_var(values, mask).item() == approx(4.0)
    assert masked_var(values, mask, unbiased=False).item() == approx(8 / 3)
    white = masked_whiten(values, mask)
    assert white[mask.bool()].tolist() == approx([-1.0, 0.0, 1.0])
    assert masked_whiten(values, mask, shift_mean=False)[mask.bool()].tolist() == approx([2.0, 3.0, 4.0])
    assert masked_mean(values, torch.zeros_like(mask)).item() == 0.0  # nothing to average, not NaN


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([math.log(0.5), math.log(0.25)]), torch.tensor([math.log(0.25), math.log(0.5)])
    ln2 = math.log(2)
    assert kl_penalty(logp, ref, "k1").tolist() == approx([ln2, -ln2])
    # k3 = exp(-d) - 1 + d: d = ln 2 -> 1/2 - 1 + ln 2; d = -ln 2 -> 2 - 1 - ln 2
    assert kl_penalty(logp, ref, "k3").tolist() == approx([ln2 - 0.5, 1 - ln2])
    assert kl_penalty(logp, ref, "low_var").tolist() == approx([ln2 - 0.5, 1 - ln2])
    assert kl_penalty(logp, ref, "abs").tolist() == approx([ln2, ln2])
    assert kl_penalty(logp, ref, "mse").tolist() == approx([0.5 * ln2**2, 0.5 * ln2**2])
    with pytest.raises(ValueError, match="k1"):
        kl_penalty(logp, ref, "k2")


def test_compute_rewards_puts_score_on_last_real_token():
    scores = torch.tensor([1.0, 2.0])
    kl = t([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    mask = t([1, 1, 0], [1, 1, 1])
    rewards = compute_rewards(scores, kl, 0.5, mask)
    assert rewards.tolist() == [approx([-0.05, 0.9, 0.0]), approx([-0.25, -0.25, 1.75])]


def test_gae_three_steps_by_hand():
    rewards, values, mask = t([0.0, 0.0, 1.0]), t([0.5, 0.6, 0.7]), t([1, 1, 1])
    # gamma=1, lam=0.5: deltas 0.1, 0.1, 0.3 -> A2 = 0.3, A1 = 0.1 + 0.5*0.3, A0 = 0.1 + 0.5*0.25
    adv, ret = compute_gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert adv.tolist() == [approx([0.225, 0.25, 0.3])]
    assert ret.tolist() == [approx([0.725, 0.85, 1.0])]
    # gamma=0.9, lam=0.5: deltas 0.04, 0.03, 0.3 -> A1 = 0.03 + 0.45*0.3, A0 = 0.04 + 0.45*0.165
    adv, _ = compute_gae(rewards, values, mask, gamma=0.9, lam=0.5)
    assert adv.tolist() == [approx([0.11425, 0.165, 0.3])]


def test_gae_episode_ends_at_last_real_token():
    # the response ended at t=1 (EOS): V after it is 0, and the padded step contributes nothing
    rewards, values, mask = t([0.0, 1.0, 0.0]), t([0.5, 0.6, 0.7]), t([1, 1, 0])
    adv, ret = compute_gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert adv.tolist() == [approx([0.3, 0.4, 0.0])]
    assert ret.tolist() == [approx([0.8, 1.0, 0.0])]


def test_gae_lambda_one_gives_monte_carlo_returns():
    rewards, values, mask = t([1.0, 2.0, 3.0, 4.0]), t([9.0, -3.0, 0.5, 2.0]), t([1, 1, 1, 1])
    _, ret = compute_gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert ret.tolist() == [approx([10.0, 9.0, 7.0, 4.0])]


def test_policy_loss_clipping_by_hand():
    ratios = torch.tensor([[1.5, 0.5, 1.1, 0.7]])
    adv = t([1.0, 1.0, -1.0, -1.0])
    out = policy_loss(ratios.log(), torch.zeros(1, 4), adv, torch.ones(1, 4), cliprange=0.2)
    # per token max(-A r, -A clip(r)): -1.2 (clipped), -0.5, 1.1, 0.8 (clipped)
    assert out.loss.item() == approx(0.05)
    assert out.clipfrac.item() == approx(0.5)
    assert out.ratio.item() == approx(0.95)
    d2 = sum(math.log(r) ** 2 for r in (1.5, 0.5, 1.1, 0.7))
    assert out.approxkl.item() == approx(0.5 * d2 / 4)
    masked = policy_loss(ratios.log(), torch.zeros(1, 4), adv, t([1, 1, 1, 0]), cliprange=0.2)
    assert masked.loss.item() == approx(-0.2)
    assert masked.clipfrac.item() == approx(1 / 3)


def test_policy_loss_gradient_is_cut_where_clipped():
    logp = torch.tensor([[math.log(1.5), math.log(1.1)]], requires_grad=True)
    policy_loss(logp, torch.zeros(1, 2), t([1.0, 1.0]), torch.ones(1, 2), cliprange=0.2).loss.backward()
    # token 0 is clipped (no gradient); token 1: d/dlogp of -A * r / 2 = -r / 2
    assert logp.grad.tolist() == [approx([0.0, -0.55])]


def test_value_loss_clipping_by_hand():
    values, old, returns = t([0.5, 0.1]), t([0.0, 0.0]), t([1.0, -1.0])
    loss, clipfrac = value_loss(values, old, returns, torch.ones(1, 2), cliprange_value=0.2)
    # token 0: clipped value 0.2 -> max((0.5-1)^2, (0.2-1)^2) = 0.64; token 1: 1.21 either way
    assert loss.item() == approx(0.5 * (0.64 + 1.21) / 2)
    assert clipfrac.item() == approx(0.5)


def test_adaptive_kl_controller_by_hand():
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    # KL 9 is 50% over target; the error is clipped to +0.2 -> x (1 + 0.2 * 64 / 10000)
    assert ctl.update(9.0, 64) == approx(0.2 * 1.00128)
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    # KL 5.4 is 10% under target -> x (1 - 0.1 * 100 / 10000)
    assert ctl.update(5.4, 100) == approx(0.2 * 0.999)
    state = ctl.state_dict()
    other = AdaptiveKLController(1.0, 6.0, 10000)
    other.load_state_dict(state)
    assert other.value == ctl.value


def test_fixed_kl_controller_never_moves():
    ctl = FixedKLController(0.05)
    assert ctl.update(100.0, 64) == 0.05
    assert ctl.update(0.0, 64) == 0.05


def test_logprobs_and_entropy_match_log_softmax_and_its_autograd():
    from rlhf.ppo.core import logprobs_and_entropy

    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 4, 7, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    labels = torch.randint(0, 7, (3, 4), generator=gen)
    weights = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    logprobs, entropy = logprobs_and_entropy(logits, labels)
    reference = torch.log_softmax(logits, -1)
    ref_logprobs = reference.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    ref_entropy = entropy_from_logprobs(reference)
    assert torch.allclose(logprobs, ref_logprobs) and torch.allclose(entropy, ref_entropy)
    assert torch.allclose(logprobs, logprobs_from_logits(logits, labels))
    for use in ("both", "logprobs", "entropy"):  # the gradient of each output alone and of both
        out = {"both": (weights[0] * logprobs + weights[1] * entropy), "logprobs": weights[0] * logprobs,
               "entropy": weights[1] * entropy}[use].sum()
        ref = {"both": (weights[0] * ref_logprobs + weights[1] * ref_entropy), "logprobs": weights[0] * ref_logprobs,
               "entropy": weights[1] * ref_entropy}[use].sum()
        grad, = torch.autograd.grad(out, logits, retain_graph=True)
        ref_grad, = torch.autograd.grad(ref, logits, retain_graph=True)
        assert torch.allclose(grad, ref_grad), use
    assert torch.autograd.gradcheck(lambda z: logprobs_and_entropy(z, labels), (logits.detach().requires_grad_(),))
