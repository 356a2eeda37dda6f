"""The PPO loop: learns a toy reward, guards against bad updates, resumes bit-for-bit."""
import math

import pytest
import torch

from rlhf.ppo.checkpoint import latest_checkpoint
from rlhf.ppo.config import PPOConfig
from rlhf.ppo.model import PolicyWithValueHead
from rlhf.ppo.trainer import PromptSampler, run_fingerprint, train_ppo
from transformers import AutoModelForCausalLM

from tests.rlhf.ppo.toy_rewards import CharShareReward

PROMPTS = ["哈", "东西"]
TIMING = ("eps", "time/rollout", "time/reward", "time/update")


def small_cfg(**kw):
    base = dict(iterations=4, batch_size=16, num_minibatches=2, ppo_epochs=2, lr=1e-2, max_new_tokens=6,
                kl_control="fixed", init_kl_coef=0.05, checkpoint_every=0, sample_every=0)
    base.update(kw)
    return PPOConfig(**base)


def weights(policy):
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def test_prompt_sampler_covers_the_pool_before_repeating_and_resumes():
    sampler = PromptSampler(5, seed=0)
    first = sampler.sample(3) + sampler.sample(2)
    assert sorted(first) == [0, 1, 2, 3, 4]
    state = sampler.state_dict()
    ahead = sampler.sample(7)
    again = PromptSampler(5, seed=123)
    again.load_state_dict(state)
    assert again.sample(7) == ahead


def test_toy_reward_rises_within_a_few_iterations(tmp_path, tok, make_lm):
    history, rows = [], []
    cfg = small_cfg(iterations=6, batch_size=32, ppo_epochs=4, max_new_tokens=8, init_kl_coef=0.0, sample_every=3)
    summary = train_ppo(cfg, make_lm(), None, tok, CharShareReward("好"), PROMPTS, tmp_path / "policy", seed=0,
                        on_iteration=lambda i, m: history.append(m), on_samples=lambda i, r: rows.append((i, r)),
                        progress=False)
    scores = [m["objective/scores"] for m in history]
    assert sum(scores[-2:]) / 2 > 3 * sum(scores[:2]) / 2, scores
    assert summary["final_score"] == scores[-1] and summary["iterations"] == 6
    for name in ("objective/kl", "objective/rlhf_reward", "objective/entropy", "policy/approxkl_avg",
                 "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg", "val/clipfrac_avg", "val/ratio",
                 "val/num_eos_tokens", "kl_coef", "eps", "guard/skipped_updates"):
        assert math.isfinite(history[-1][name]), name
    assert [i for i, _ in rows] == [3, 6] and set(rows[0][1][0]) == {"prompt", "completion", "score"}
    # the final policy: LM loadable alone, head beside it, tokenizer saved, checkpoints gone
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "policy") is not None
    assert (tmp_path / "policy" / "value_head.safetensors").exists()
    assert (tmp_path / "policy" / "tokenizer.json").exists() or (tmp_path / "policy" / "vocab.txt").exists()


class NanOnIteration(CharShareReward):
    def __init__(self, bad_call):
        super().__init__("好")
        self.calls, self.bad_call = 0, bad_call

    def score(self, ids, mask, texts):
        self.calls += 1
        scores = super().score(ids, mask, texts)
        if self.calls == self.bad_call:
            scores[0] = float("nan")
        return scores


def test_nan_reward_skips_the_update_and_keeps_weights(tmp_path, tok, make_lm):
    policy = PolicyWithValueHead(make_lm())
    snapshots, history = {}, []

    def record(i, m):
        snapshots[i] = weights(policy)
        history.append(m)

    train_ppo(small_cfg(iterations=3), policy, None, tok, NanOnIteration(bad_call=2), PROMPTS, tmp_path, seed=0,
              on_iteration=record, progress=False)
    assert [m["guard/skipped_updates"] for m in history] == [0.0, 1.0, 1.0]
    assert all(torch.equal(snapshots[1][k], snapshots[2][k]) for k in snapshots[1])  # iteration 2 changed nothing
    assert any(not torch.equal(snapshots[2][k], snapshots[3][k]) for k in snapshots[2])  # iteration 3 trained
    assert math.isnan(history[1]["loss/policy_avg"]) and math.isfinite(history[2]["loss/policy_avg"])


def test_guard_restores_weights_after_a_minibatch_already_stepped(tmp_path, tok, make_lm):
    # The first minibatch has approx KL exactly 0 (nothing changed yet) and steps; the second
    # exceeds the tiny limit, so the whole update must be rolled back, optimiser state included.
    policy = PolicyWithValueHead(make_lm())
    before = weights(policy)
    history = []
    train_ppo(small_cfg(iterations=1, max_approxkl=1e-12), policy, None, tok, CharShareReward("好"), PROMPTS,
              tmp_path, seed=0, on_iteration=lambda i, m: history.append(m), progress=False)
    assert history[0]["guard/skipped_updates"] == 1.0
    assert all(torch.equal(before[k], v) for k, v in weights(policy).items())


class Killed(RuntimeError):
    pass


def test_resume_after_a_kill_ends_exactly_like_an_uninterrupted_run(tmp_path, tok, make_lm):
    cfg = small_cfg(iterations=5, checkpoint_every=2)

    full_history = []
    full = PolicyWithValueHead(make_lm(), seed=0)
    train_ppo(cfg, full, None, tok, CharShareReward("好"), PROMPTS, tmp_path / "a", seed=0,
              on_iteration=lambda i, m: full_history.append(m), progress=False)

    def kill_after_3(i, m):
        if i == 3:
            raise Killed()

    with pytest.raises(Killed):
        train_ppo(cfg, PolicyWithValueHead(make_lm(), seed=0), None, tok, CharShareReward("好"), PROMPTS,
                  tmp_path / "b", seed=0, on_iteration=kill_after_3, progress=False)
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "iter_000002"
    assert not [p for p in (tmp_path / "b" / "checkpoints").iterdir() if p.name.startswith(".tmp")]

    resumed_history = []
    resumed = PolicyWithValueHead(make_lm(), seed=0)
    summary = train_ppo(cfg, resumed, None, tok, CharShareReward("好"), PROMPTS, tmp_path / "b", seed=0,
                        on_iteration=lambda i, m: resumed_history.append(m), progress=False)
    assert summary["resumed_from"] == 2 and summary["iterations"] == 5
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in full.state_dict().items())
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMING and not k.startswith("time/")}  # noqa: E731
    assert [strip(m) for m in resumed_history] == [strip(m) for m in full_history[2:]]
    assert summary["initial_score"] == full_history[0]["objective/scores"]
    assert not (tmp_path / "b" / "checkpoints").exists()  # removed after success (keep_checkpoints false)


def test_resume_refuses_a_checkpoint_of_a_different_run(tmp_path, tok, make_lm):
    cfg = small_cfg(iterations=2, checkpoint_every=1, keep_checkpoints=True)
    train_ppo(cfg, make_lm(), None, tok, CharShareReward("好"), PROMPTS, tmp_path, seed=0, progress=False)
    with pytest.raises(ValueError, match="different run"):
        train_ppo(small_cfg(iterations=3, checkpoint_every=1, batch_size=8), make_lm(), None, tok,
                  CharShareReward("好"), PROMPTS, tmp_path, seed=0, progress=False)


def test_run_fingerprint_covers_what_changes_the_run():
    cfg, inputs = small_cfg(), {"base": "b1", "reward_model": "r1"}
    key = run_fingerprint(cfg, PROMPTS, 0, inputs)
    assert len(key) == 16 and key == run_fingerprint(small_cfg(), list(PROMPTS), 0, dict(inputs))
    # What changes no result: logging, checkpoints, threads; the iteration count under a constant lr.
    assert key == run_fingerprint(small_cfg(iterations=40, sample_every=3, checkpoint_every=5, threads=2), PROMPTS, 0,
                                  inputs)
    changed = [small_cfg(batch_size=8), small_cfg(lr=1e-3)]
    assert all(run_fingerprint(c, PROMPTS, 0, inputs) != key for c in changed)
    assert run_fingerprint(cfg, PROMPTS[:1], 0, inputs) != key and run_fingerprint(cfg, PROMPTS, 1, inputs) != key
    assert run_fingerprint(cfg, PROMPTS, 0, {**inputs, "reward_model": "r2"}) != key  # another reward model
    linear = small_cfg(lr_schedule="linear")  # the lr decays over `iterations`: a longer run is another run
    assert run_fingerprint(linear, PROMPTS, 0) != run_fingerprint(small_cfg(lr_schedule="linear", iterations=8),
                                                                  PROMPTS, 0)


def test_novelty_coef_counters_collapse_onto_one_phrase(tmp_path, tok, make_lm):
    """The toy reward pays for repeating one character; the n-gram overlap penalty pays against it."""
    def final_overlap(coef, name):
        history = []
        cfg = small_cfg(iterations=6, batch_size=32, ppo_epochs=4, max_new_tokens=8, init_kl_coef=0.0,
                        novelty_coef=coef)
        train_ppo(cfg, make_lm(), None, tok, CharShareReward("好"), PROMPTS, tmp_path / name, seed=0,
                  on_iteration=lambda i, m: history.append(m), progress=False)
        return sum(m["objective/ngram_overlap"] for m in history[-2:]) / 2

    plain, novel = final_overlap(0.0, "plain"), final_overlap(2.0, "novel")
    assert novel < plain / 2, (novel, plain)
