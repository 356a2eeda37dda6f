"""PPO for language models: one iteration reads top to bottom in :func:`ppo_step`.

    rollout   -> sample completions (KV cache), old log-probs + values, reference log-probs
    rewards   -> score of prompt + completion at its last token (optionally minus novelty_coef x
                 its n-gram overlap with the rollout), minus beta * KL per token
    advantages-> GAE (gamma, lambda), whitened over the rollout's real tokens
    losses    -> clipped policy loss + vf_coef * clipped value loss (- entropy bonus)
    update    -> ppo_epochs x num_minibatches AdamW steps with gradient clipping

:func:`train_ppo` runs the iterations: prompt sampling, KL control, guards, metrics callbacks,
checkpoints and resume. Shapes: ``B`` episodes, ``P`` prompt width, ``G`` response length,
``V`` vocabulary.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf.distributed import all_sum, gather_rows, is_main, rank_and_world, shard
from rlhf.ppo.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rlhf.ppo.config import PPOConfig
from rlhf.ppo.core import (AdaptiveKLController, FixedKLController, compute_gae, compute_rewards, kl_penalty,
                           logprobs_and_entropy, masked_mean, masked_whiten, policy_loss, value_loss)
from rlhf.ppo.model import PolicyWithValueHead, use_fast_gelu
from rlhf.ppo.phases import Phases
from rlhf.ppo.rewards import RewardFunction, batch_ngram_overlap
from rlhf.ppo.rollout import Rollout, decode_completions, rollout
from rlhf.seed import rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)
OnIteration = Callable[[int, dict], None]
OnSamples = Callable[[int, list], None]


class PromptSampler:
    """Seeded batches of prompt indices: a fresh permutation of the pool each pass, no repeats within one."""

    def __init__(self, pool_size: int, seed: int):
        if pool_size < 1:
            raise ValueError("train_ppo: the prompt pool is empty; expected at least one prompt")
        self.pool_size = pool_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []
        self.position = 0

    def sample(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            if self.position >= len(self.order):
                self.order = torch.randperm(self.pool_size, generator=self.generator).tolist()
                self.position = 0
            take = self.order[self.position:self.position + n - len(out)]
            out += take
            self.position += len(take)
        return out

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": list(self.order), "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position = list(state["order"]), int(state["position"])


def make_kl_controller(cfg: PPOConfig) -> AdaptiveKLController | FixedKLController:
    if cfg.kl_control == "adaptive":
        return AdaptiveKLController(cfg.init_kl_coef, cfg.kl_target, cfg.kl_horizon)
    return FixedKLController(cfg.init_kl_coef)


class SkipUpdate(Exception):
    """An update abandoned by a guard; the message says why."""


# --------------------------------------------------------------------------- one PPO iteration


def ppo_step(cfg: PPOConfig, policy: PolicyWithValueHead, ref: PreTrainedModel, tok: PreTrainedTokenizerBase,
             reward_fn: RewardFunction, optimizer: torch.optim.Optimizer, kl_coef: float,
             prompts: Sequence[str], *, accelerator=None, train_policy: torch.nn.Module | None = None,
             phases: Phases | None = None) -> tuple[dict, Rollout, list[str], torch.Tensor]:
    """One PPO iteration on ``prompts``; returns ``(metrics, rollout, completions, scores)``.

    The weights are updated in place, unless a guard trips (non-finite score, loss or gradient,
    KL to the reference beyond ``max_kl``, approx KL beyond ``max_approxkl``): then they and the
    optimiser state are left as before the update and ``metrics["guard/skipped"]`` is 1.

    Data parallel (``accelerator`` of N processes): ``prompts`` are this process's strided share of
    the global batch; sampling, whitening, the KL fed to the controller, the guards and the metrics
    are those of the global batch (one process's numbers, up to floating-point noise), and the
    update goes through ``train_policy`` (the policy wrapped for gradient all-reduce).

    Timing: ``metrics["time/<phase>"]`` are the seconds of each phase of :data:`rlhf.ppo.phases.PHASES`
    (``phases``, when given, collects them too), ``time/rollout`` those of sampling, scoring passes
    and decoding together.
    """
    _, world = rank_and_world(accelerator)
    reduce = (lambda t: all_sum(t, accelerator)) if world > 1 else None
    phases = phases if phases is not None else Phases()
    timings = {}
    t0 = time.perf_counter()

    # 1. rollout: sample, then old log-probs / values (policy) and reference log-probs
    batch = rollout(policy, ref, tok, prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                    top_k=cfg.top_k, top_p=cfg.top_p, accelerator=accelerator, phases=phases)
    mask = batch.response_mask  # (B, G)
    completions = decode_completions(tok, batch)
    timings["time/rollout"] = time.perf_counter() - t0

    # 2. rewards: the score at the last real token, minus beta * KL(policy || ref) on every token
    t1 = time.perf_counter()
    with phases("reward"):
        scores = reward_fn.score(batch.query_responses, batch.attention_mask,
                                 [p + c for p, c in zip(prompts, completions)]).float().to(mask.device)  # (B,)
    t_adv = time.perf_counter()
    if cfg.missing_eos_penalty:
        scores = scores - cfg.missing_eos_penalty * (~batch.ended).float()
    if cfg.score_clip:
        scores = scores.clamp(-cfg.score_clip, cfg.score_clip)
    content = mask.bool() & (batch.responses != tok.eos_token_id)  # the EOS closing a completion is no phrase
    if world > 1:  # overlap with the rest of the global rollout, this process's rows of it
        everyone = gather_rows(batch.responses, accelerator, tok.pad_token_id)  # (B_global, G_max)
        everyone_content = gather_rows(content.long(), accelerator, 0).bool()
        overlap = shard(batch_ngram_overlap(everyone, everyone_content, cfg.novelty_ngram), accelerator)
        overlap = torch.stack(overlap).to(mask.device) if overlap else torch.zeros(0, device=mask.device)
    else:
        overlap = batch_ngram_overlap(batch.responses, content, cfg.novelty_ngram).to(mask.device)  # (B,)
    if cfg.novelty_coef:
        scores = scores - cfg.novelty_coef * overlap
    kl = kl_penalty(batch.logprobs, batch.ref_logprobs, cfg.kl_estimator) * mask  # (B, G)
    rewards = compute_rewards(scores, kl, kl_coef, mask)  # (B, G)
    if cfg.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False, reduce=reduce) * mask
    timings["time/reward"] = time.perf_counter() - t1

    # 3. advantages: GAE over response tokens, whitened
    advantages, returns = compute_gae(rewards, batch.values, mask, cfg.gamma, cfg.lam)  # (B, G) each
    if cfg.whiten_advantages:
        advantages = masked_whiten(advantages, mask, reduce=reduce) * mask
    phases.add("advantages", time.perf_counter() - t_adv)  # the KL penalty, n-gram overlap, GAE, whitening

    # 4. + 5. losses and update, guarded
    t2 = time.perf_counter()
    non_score_reward = -(kl_coef * kl).sum(1)  # (B,)
    row_stats = torch.stack([scores, kl.sum(1), (-batch.logprobs * mask).sum(1), overlap, non_score_reward,
                             batch.ended.float(), mask.sum(1)], 1).double()  # (B, 7)
    if world > 1:  # global means over the rollout's rows, and non-finite scores anywhere
        sums = all_sum(torch.cat([row_stats.sum(0), row_stats.new_tensor([len(batch),
                                                                           (~torch.isfinite(scores)).sum()])]),
                       accelerator)
        means = (sums[:7] / sums[7]).tolist()
        finite_scores = bool(sums[8] == 0)
    else:
        means = [float(scores.mean()), float(kl.sum(1).mean()), float((-batch.logprobs * mask).sum(1).mean()),
                 float(overlap.mean()), float(non_score_reward.mean()), float(batch.ended.float().mean()),
                 float(mask.sum(1).mean()), float(scores.mean() + non_score_reward.mean())]
        finite_scores = bool(torch.isfinite(scores).all())
    mean_kl = means[1]
    skipped, stats = 0.0, None
    try:
        if not finite_scores:
            raise SkipUpdate("non-finite score")
        if cfg.max_kl and not mean_kl <= cfg.max_kl:
            raise SkipUpdate(f"KL {mean_kl:.2f} beyond max_kl {cfg.max_kl}")
        with phases("update"):
            stats = ppo_update(cfg, policy, optimizer, batch, advantages, returns, accelerator=accelerator,
                               train_policy=train_policy)
    except SkipUpdate as why:
        log.warning("ppo: update skipped, weights and optimiser state unchanged: %s", why)
        skipped = 1.0
    timings["time/update"] = time.perf_counter() - t2

    # metrics, with the names TRL users read
    n = len(batch) if world == 1 else int(sums[7])  # episodes of the global rollout
    metrics = {
        "objective/scores": means[0],
        "objective/kl": mean_kl,
        "objective/entropy": means[2],
        "objective/ngram_overlap": means[3],
        "objective/non_score_reward": means[4],
        "objective/rlhf_reward": means[7] if world == 1 else means[0] + means[4],
        "val/num_eos_tokens": means[5],
        "val/response_length": means[6],
        "kl_coef": kl_coef,
        "lr": optimizer.param_groups[0]["lr"],
        "guard/skipped": skipped,
    }
    nan = float("nan")
    for name in ("policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg",
                 "val/clipfrac_avg", "val/ratio", "policy/entropy_avg"):
        metrics[name] = float(stats[name]) if stats is not None else nan
    metrics.update(timings)
    metrics.update(phases.metrics())
    metrics["eps"] = n / (time.perf_counter() - t0)
    return metrics, batch, completions, scores


def ppo_update(cfg: PPOConfig, policy: PolicyWithValueHead, optimizer: torch.optim.Optimizer, batch: Rollout,
               advantages: torch.Tensor, returns: torch.Tensor, *, accelerator=None,
               train_policy: torch.nn.Module | None = None) -> dict:
    """``ppo_epochs`` passes of shuffled minibatches over one rollout; returns averaged loss statistics.

    Raises :class:`SkipUpdate` (after restoring the weights and optimiser state it started
    from) when a loss or gradient is not finite or a minibatch's approx KL exceeds ``max_approxkl``.

    Data parallel (N processes, ``batch`` this process's strided share of the rollout): every
    process draws the same permutation of the global rollout; of each global minibatch a process
    forwards its own episodes, and its losses are divided by the minibatch's global token count
    (times N, which the gradient all-reduce averages away), so the step is the one-process step.
    A process with no episode in a minibatch forwards one with an all-zero mask (every process
    must join every all-reduce). Guards decide on global values, so all processes agree.
    """
    rank, world = rank_and_world(accelerator)
    forward = train_policy if train_policy is not None else policy
    backup = snapshot(policy, optimizer)
    prompt_lengths = batch.attention_mask[:, :batch.prompt_width].sum(1)  # (B,)
    response_lengths = batch.response_mask.sum(1).long()  # (B,)
    params = [p for p in policy.parameters() if p.requires_grad]
    global_size = len(batch) if world == 1 else int(all_sum(torch.tensor([float(len(batch))]), accelerator))
    plain_clip = accelerator is None or (world == 1 and accelerator.mixed_precision == "no")
    sums: dict[str, float] = {}
    steps = 0
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(global_size)
        for global_idx in order.split(cfg.minibatch_size):
            idx, count = global_idx, None
            if world > 1:
                mine = [int(g) // world for g in global_idx if int(g) % world == rank]
                idx = torch.tensor(mine or [0])
            # drop the columns that are padding in every row of this minibatch
            p_width, g_width = int(prompt_lengths[idx].max()), int(response_lengths[idx].max())
            cols = slice(batch.prompt_width - p_width, batch.prompt_width + g_width)
            query_responses = batch.query_responses[idx, cols]  # (mb, p + g)
            attention_mask = batch.attention_mask[idx, cols]
            mask = batch.response_mask[idx, :g_width]  # (mb, g)
            responses = query_responses[:, p_width:]  # (mb, g)
            if world > 1:
                if not mine:
                    mask = torch.zeros_like(mask)
                count = all_sum(mask.sum().reshape(1).double(), accelerator)[0].clamp(min=1.0).item() / world

            logits, values = forward(query_responses, attention_mask, p_width)  # (mb, g, V), (mb, g)
            if cfg.temperature != 1.0:
                logits = logits / cfg.temperature
            # log-probs and entropies in one function of few passes over the vocabulary (the entropy's
            # gradient only when the bonus is on: it is not computed otherwise)
            logprobs, token_entropy = logprobs_and_entropy(logits, responses)  # (mb, g) each
            pg = policy_loss(logprobs, batch.logprobs[idx, :g_width], advantages[idx, :g_width], mask,
                             cfg.cliprange, count=count)
            vf_loss, vf_clipfrac = value_loss(values, batch.values[idx, :g_width], returns[idx, :g_width], mask,
                                              cfg.cliprange_value, count=count)
            loss = pg.loss + cfg.vf_coef * vf_loss
            if cfg.entropy_coef:
                entropy = masked_mean(token_entropy, mask, count=count)
                loss = loss - cfg.entropy_coef * entropy
            else:
                entropy = masked_mean(token_entropy.detach(), mask, count=count)

            named = (("policy/approxkl_avg", pg.approxkl), ("policy/clipfrac_avg", pg.clipfrac),
                     ("loss/policy_avg", pg.loss), ("loss/value_avg", vf_loss), ("val/clipfrac_avg", vf_clipfrac),
                     ("val/ratio", pg.ratio), ("policy/entropy_avg", entropy))
            if world > 1:  # global values: each process holds N x its part of the global mean
                values_now = torch.stack([v.detach().double().reshape(()) for _, v in named]
                                         + [(~torch.isfinite(loss.detach())).double()])
                values_now = all_sum(values_now, accelerator)
                finite_loss, approxkl = bool(values_now[-1] == 0), float(values_now[0]) / world
                stat_values = [float(v) / world for v in values_now[:-1]]
            else:
                finite_loss, approxkl = bool(torch.isfinite(loss)), float(pg.approxkl)
                stat_values = None
            if not finite_loss:
                restore(policy, optimizer, backup)
                raise SkipUpdate("non-finite loss")
            if cfg.max_approxkl and approxkl > cfg.max_approxkl:
                restore(policy, optimizer, backup)
                raise SkipUpdate(f"approx KL {approxkl:.3f} beyond max_approxkl {cfg.max_approxkl}")
            optimizer.zero_grad(set_to_none=True)
            max_norm = cfg.max_grad_norm if cfg.max_grad_norm else math.inf
            if plain_clip:
                loss.backward()
                if max_norm == math.inf:  # no clipping (x 1.0 is a no-op): the norm only serves the finiteness check
                    grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None],
                                                              foreach=True)
                else:
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
            else:  # gradients averaged over processes (and unscaled under fp16) before the norm is taken
                accelerator.backward(loss)
                grad_norm = accelerator.clip_grad_norm_(params, max_norm)
            if not torch.isfinite(torch.as_tensor(grad_norm)):
                restore(policy, optimizer, backup)
                raise SkipUpdate("non-finite gradient")
            optimizer.step()

            for i, (name, value) in enumerate(named):
                sums[name] = sums.get(name, 0.0) + (float(value.detach()) if stat_values is None else stat_values[i])
            steps += 1
    optimizer.zero_grad(set_to_none=True)
    return {name: total / steps for name, total in sums.items()}


def snapshot(policy: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[list[torch.Tensor], dict]:
    """Copies of the weights and optimiser state, for :func:`restore` when a guard trips."""
    return [p.detach().clone() for p in policy.parameters()], copy.deepcopy(optimizer.state_dict())


def restore(policy: torch.nn.Module, optimizer: torch.optim.Optimizer, backup) -> None:
    weights, opt_state = backup
    with torch.no_grad():
        for p, saved in zip(policy.parameters(), weights):
            p.copy_(saved)
    optimizer.load_state_dict(opt_state)
    optimizer.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------- the training run


def train_ppo(cfg: PPOConfig, policy: PolicyWithValueHead | PreTrainedModel, ref: PreTrainedModel | None,
              tok: PreTrainedTokenizerBase, reward_fn: RewardFunction, prompts: Sequence[str],
              out_dir: str | Path, *, seed: int, on_iteration: OnIteration | None = None,
              on_samples: OnSamples | None = None, progress: bool = True,
              checkpoint_dir: str | Path | None = None, run_inputs: Mapping[str, Any] | None = None,
              accelerator=None) -> dict:
    """Fine-tune ``policy`` with PPO on ``prompts`` against ``reward_fn``; save it to ``out_dir``.

    ``policy``: a :class:`PolicyWithValueHead` (or a causal LM, given a fresh seeded head);
    ``ref``: the frozen reference (``None``: a copy of the initial policy LM).
    ``on_iteration(iteration, metrics)`` gets each iteration's metrics (1-based iteration);
    ``on_samples(iteration, rows)`` gets ``[{"prompt", "completion", "score"}, ...]`` every
    ``cfg.sample_every`` iterations. Checkpoints go to ``checkpoint_dir`` (default
    ``out_dir/checkpoints``) every ``cfg.checkpoint_every`` iterations; with ``cfg.resume`` the
    run continues from the newest one and ends with the same weights and metrics as an
    uninterrupted run (on CPU). A checkpoint resumes only a run with the same
    :func:`run_fingerprint`; ``run_inputs`` adds to it what the trainer cannot see (e.g. hashes of
    the initial model's and the reward model's files). Returns a summary: first/last mean score and KL, median
    episodes/s, skipped updates, ... and ``history``, the metrics of every iteration (those
    before a resume included).

    ``accelerator``: an :class:`accelerate.Accelerator` for a data-parallel run (None: one plain
    process). Each process rolls out its strided share of every global batch of
    ``cfg.batch_size`` prompts (see :func:`ppo_step`); every process keeps the same RNG state, so
    the run, its checkpoints and a resume (with any process count) are those of one process, up
    to floating-point noise. Only the main process calls the callbacks and writes files.
    """
    seed_everything(seed)
    # Deterministic mode also NaN-fills every new tensor (~8k fills an iteration); no CPU kernel
    # here reads memory it did not write, so the fills buy nothing: off for the run, then restored.
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        return _train(cfg, policy, ref, tok, reward_fn, list(prompts), Path(out_dir), seed=seed,
                      on_iteration=on_iteration, on_samples=on_samples, progress=progress,
                      checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
                      run_inputs=run_inputs, accelerator=accelerator)
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = fill


def _train(cfg: PPOConfig, policy, ref, tok, reward_fn, prompts: list[str], out_dir: Path, *, seed: int,
           on_iteration, on_samples, progress: bool, checkpoint_dir: Path | None,
           run_inputs: Mapping[str, Any] | None, accelerator=None) -> dict:
    checkpoint_dir = checkpoint_dir if checkpoint_dir is not None else out_dir / "checkpoints"
    if not isinstance(policy, PolicyWithValueHead):
        policy = PolicyWithValueHead(policy, seed=seed)
    if ref is None:
        ref = copy.deepcopy(policy.lm)
    ref.eval().requires_grad_(False)
    policy.eval()  # no dropout, in rollout and update alike: PPO's ratios assume one fixed policy
    use_fast_gelu(policy)
    use_fast_gelu(ref)
    main = is_main(accelerator)
    progress = progress and main
    if accelerator is not None:
        policy.to(accelerator.device)
        ref.to(accelerator.device)
    # fused: one kernel per parameter instead of ~10 (CPU and CUDA); the update is AdamW's all the same
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
                                  fused=policy.device.type in ("cpu", "cuda"))
    train_policy = None
    if accelerator is not None:  # the update's forward goes through the wrapper (gradient all-reduce)
        train_policy, optimizer = accelerator.prepare(policy, optimizer)
        if accelerator.num_processes > 1 and hasattr(reward_fn, "share_scores"):
            reward_fn.share_scores = lambda raw: gather_rows(raw.reshape(-1, 1).float(), accelerator)[:, 0]
    kl_ctl = make_kl_controller(cfg)
    sampler = PromptSampler(len(prompts), seed)
    history: list[dict] = []
    start, resumed_from = 0, None
    fingerprint = run_fingerprint(cfg, prompts, seed, run_inputs)

    last = latest_checkpoint(checkpoint_dir) if cfg.resume else None
    if last is not None:
        state = load_checkpoint(last, policy)
        if state["fingerprint"] != fingerprint:
            raise ValueError(f"{last}: checkpoint of a different run (batch size, prompts, seed, sampling "
                             f"settings or input models changed); delete {checkpoint_dir} or set ppo.resume: false")
        optimizer.load_state_dict(state["optimizer"])
        kl_ctl.load_state_dict(state["kl_controller"])
        sampler.load_state_dict(state["sampler"])
        if state.get("reward_fn") is not None and hasattr(reward_fn, "load_state_dict"):
            reward_fn.load_state_dict(state["reward_fn"])
        set_rng_state(state["rng"])
        history, start = list(state["history"]), int(state["iteration"])
        resumed_from = start

    t_start = time.perf_counter()
    bar = tqdm(total=cfg.iterations, initial=start, disable=not progress, desc="ppo", unit="it")
    for iteration in range(start + 1, cfg.iterations + 1):
        if cfg.lr_schedule == "linear":
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * (1.0 - (iteration - 1) / cfg.iterations)
        batch_prompts = shard([prompts[i] for i in sampler.sample(cfg.batch_size)], accelerator)
        metrics, batch, completions, scores = ppo_step(cfg, policy, ref, tok, reward_fn, optimizer, kl_ctl.value,
                                                       batch_prompts, accelerator=accelerator,
                                                       train_policy=train_policy)
        if math.isfinite(metrics["objective/kl"]):
            kl_ctl.update(metrics["objective/kl"], cfg.batch_size)
        skipped_before = history[-1]["guard/skipped_updates"] if history else 0.0
        metrics["guard/skipped_updates"] = skipped_before + metrics.pop("guard/skipped")
        metrics["episode"] = float(iteration * cfg.batch_size)
        history.append(metrics)

        if cfg.checkpoint_every and iteration % cfg.checkpoint_every == 0 and iteration < cfg.iterations and main:
            # every process has the same RNG state, weights and optimiser state: the main process's are the run's
            save_checkpoint(checkpoint_dir, iteration, policy, {
                "iteration": iteration, "history": history, "fingerprint": fingerprint,
                "optimizer": optimizer.state_dict(), "kl_controller": kl_ctl.state_dict(),
                "sampler": sampler.state_dict(), "rng": rng_state(),
                "reward_fn": reward_fn.state_dict() if hasattr(reward_fn, "state_dict") else None,
                "config": dataclasses.asdict(cfg),
            })
        bar.update(1)
        bar.set_postfix(score=f"{metrics['objective/scores']:.3f}", kl=f"{metrics['objective/kl']:.2f}")
        if on_iteration is not None and main:
            on_iteration(iteration, metrics)
        # samples: the main process's share of the rollout
        if on_samples is not None and main and cfg.sample_every and iteration % cfg.sample_every == 0:
            k = min(cfg.num_samples, len(batch_prompts))
            on_samples(iteration, [{"prompt": batch_prompts[i], "completion": completions[i],
                                    "score": float(scores[i])} for i in range(k)])
    bar.close()

    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        policy.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
        if not cfg.keep_checkpoints and checkpoint_dir.exists():
            shutil.rmtree(checkpoint_dir)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return summarize(history, resumed_from, time.perf_counter() - t_start)


def summarize(history: list[dict], resumed_from: int | None, seconds: float) -> dict:
    """First/last values of the headline metrics and the median episodes/s of a run's history."""
    if not history:
        return {"iterations": 0, "resumed_from": resumed_from, "history": []}
    first, last = history[0], history[-1]
    return {
        "iterations": len(history),
        "episodes": last["episode"],
        "initial_score": first["objective/scores"],
        "final_score": last["objective/scores"],
        "initial_kl": first["objective/kl"],
        "final_kl": last["objective/kl"],
        "final_kl_coef": last["kl_coef"],
        "final_num_eos": last["val/num_eos_tokens"],
        "eps_median": statistics.median(h["eps"] for h in history),
        "skipped_updates": last["guard/skipped_updates"],
        "resumed_from": resumed_from,
        "seconds_this_session": seconds,
        "history": history,  # every iteration's metrics, those before a resume included
    }


def run_fingerprint(cfg: PPOConfig, prompts: Sequence[str], seed: int,
                    run_inputs: Mapping[str, Any] | None = None) -> str:
    """16 hex digits over what must not change between a checkpoint and its resumption.

    Every ``cfg`` field but those that change no result (logging, checkpoints, threads; and
    ``iterations`` under a constant learning rate: a longer run continues a shorter one exactly),
    the prompts, the seed, and ``run_inputs`` (JSON-serialisable; e.g. the input models' hashes).
    The PPO stage keys its checkpoint directory by it.
    """
    fields = dataclasses.asdict(cfg)
    free = ["checkpoint_every", "keep_checkpoints", "resume", "sample_every", "num_samples", "threads"]
    if cfg.lr_schedule == "constant":  # a linear schedule decays over `iterations`: then it is part of the run
        free.append("iterations")
    for name in free:
        fields.pop(name, None)
    what = repr((sorted(fields.items()), list(prompts), seed))
    if run_inputs:
        what += json.dumps(run_inputs, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(what.encode("utf-8")).hexdigest()[:16]
