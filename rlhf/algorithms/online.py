"""GRPO and RLOO through TRL: sample a group of completions per prompt, score them, update the policy.

The same inputs as PPO (:func:`rlhf.ppo.trainer.train_ppo`): the base model's directory, the train
prompt pool and a reward function of :mod:`rlhf.ppo.rewards` (the reward model normalised as PPO
normalises it, or the judge), called by TRL through :class:`rlhf.algorithms.trl_glue.TRLReward`.
KL to the base is TRL's ``beta``: with ``beta > 0`` TRL loads the reference from the policy's
``config._name_or_path``, which is why the policy is loaded here from ``base_dir`` (absolute).

TRL arguments set here and why (besides :func:`rlhf.algorithms.trl_glue.training_arguments`):
``per_device_train_batch_size = batch_size`` with ``gradient_accumulation_steps = 1`` (one step = one
fresh batch of ``batch_size`` episodes = ``batch_size / num_generations`` prompts);
``max_completion_length = max_new_tokens``; ``temperature``/``top_k``/``top_p`` as given (TRL's own
sampler through ``generate``); ``beta``, ``epsilon``, ``num_iterations``; GRPO's ``loss_type`` and
``scale_rewards``, RLOO's ``normalize_advantages``; ``shuffle_dataset=True`` (seeded by ``seed``).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from rlhf.algorithms.config import GRPOConfig, OnlineConfig, RLOOConfig
from rlhf.algorithms.trl_glue import (LogCallback, OnLog, TRLReward, check_prompt_ids, mean_of, train_and_save,
                                      training_arguments, trl_prompt, trl_tokenizer)


def prompt_dataset(tok, prompts: Sequence[str]):
    """A ``datasets.Dataset`` with ``prompt`` (``[BOS] + prompt`` as text, what TRL tokenizes) and
    ``text_prompt`` (the prompt itself, what the reward reads)."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [trl_prompt(tok, p) for p in prompts], "text_prompt": list(prompts)})


def _online_args(algorithm: str, cfg: OnlineConfig, common: dict):
    """The TRL config object of ``algorithm`` ('grpo' or 'rloo') for ``cfg``."""
    shared = dict(common, per_device_train_batch_size=cfg.batch_size, num_generations=cfg.num_generations,
                  max_completion_length=cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k,
                  top_p=cfg.top_p, beta=cfg.beta, epsilon=cfg.epsilon, num_iterations=cfg.num_iterations,
                  shuffle_dataset=True)
    if algorithm == "grpo":
        from trl import GRPOConfig as TRLGRPOConfig

        return TRLGRPOConfig(**shared, loss_type=cfg.loss_type, scale_rewards=cfg.scale_rewards)
    from trl import RLOOConfig as TRLRLOOConfig

    return TRLRLOOConfig(**shared, normalize_advantages=cfg.normalize_advantages)


def train_online(algorithm: str, cfg: OnlineConfig, base_dir: str | Path, prompts: Sequence[str], reward_fn,
                 out_dir: str | Path, *, seed: int, device: str = "cpu", mixed_precision: str = "no",
                 on_log: OnLog | None = None, progress: bool = False) -> dict:
    """Train the causal LM saved in ``base_dir`` on ``prompts`` with TRL's GRPO or RLOO; save it in ``out_dir``.

    ``reward_fn``: a :mod:`rlhf.ppo.rewards` reward function (``score(ids, mask, texts)``).
    ``on_log(step, metrics)`` receives TRL's metrics each step (``reward``, ``reward_std``, ``kl``
    when ``beta > 0``, ``completions/mean_length``, ``entropy``, ``clip_ratio/*``...). Returns the
    run's metrics: steps, episodes, first and final reward (means of the first and last 10% of
    steps), final KL, wall time.
    """
    from transformers import AutoModelForCausalLM

    from rlhf.tokenizer import load_tokenizer

    if algorithm not in ("grpo", "rloo"):
        raise ValueError(f"train_online: algorithm {algorithm!r}; expected 'grpo' or 'rloo'")
    prompts = list(prompts)
    if len(prompts) < cfg.prompts_per_step:
        raise ValueError(f"{algorithm}: {len(prompts)} train prompts, fewer than the {cfg.prompts_per_step} distinct "
                         f"prompts a step needs ({algorithm}.batch_size / {algorithm}.num_generations)")
    base_dir = Path(base_dir).resolve()  # TRL re-loads the reference from config._name_or_path
    tok = load_tokenizer(base_dir)
    trl_tok = trl_tokenizer(tok)
    check_prompt_ids(tok, trl_tok, prompts)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    logs = LogCallback(on_log)
    reward = TRLReward(reward_fn, tok, name=getattr(cfg, "reward_source", "reward"))
    with tempfile.TemporaryDirectory(prefix=f"trl-{algorithm}-") as scratch:
        args = _online_args(algorithm, cfg, training_arguments(cfg, out_dir=scratch, seed=seed, device=device,
                                                               mixed_precision=mixed_precision, progress=progress))
        if algorithm == "grpo":
            from trl import GRPOTrainer as Trainer
        else:
            from trl import RLOOTrainer as Trainer
        trainer = Trainer(model=model, reward_funcs=reward, args=args, train_dataset=prompt_dataset(tok, prompts),
                          processing_class=trl_tok, callbacks=[logs])
        seconds = train_and_save(trainer, tok, out_dir, progress)
    history = logs.history
    tenth = max(len(history) // 10, 1)
    metrics = {
        "algorithm": algorithm, "steps": cfg.steps, "episodes": cfg.steps * cfg.batch_size,
        "prompts": len(prompts), "reward_source": cfg.reward_source,
        "first_reward": mean_of(history, "reward", slice(0, tenth)),
        "final_reward": mean_of(history, "reward", slice(-tenth, None)),
        "final_kl": mean_of(history, "kl", slice(-tenth, None)),
        "seconds": seconds,
    }
    if history:
        metrics["episodes_per_second"] = metrics["episodes"] / max(seconds, 1e-9)
    return {k: v for k, v in metrics.items() if v is not None}


def train_grpo(cfg: GRPOConfig, base_dir: str | Path, prompts: Sequence[str], reward_fn, out_dir: str | Path, *,
               seed: int, device: str = "cpu", mixed_precision: str = "no", on_log: OnLog | None = None,
               progress: bool = False) -> dict:
    """GRPO (``trl.GRPOTrainer``); see :func:`train_online`."""
    return train_online("grpo", cfg, base_dir, prompts, reward_fn, out_dir, seed=seed, device=device,
                        mixed_precision=mixed_precision, on_log=on_log, progress=progress)


def train_rloo(cfg: RLOOConfig, base_dir: str | Path, prompts: Sequence[str], reward_fn, out_dir: str | Path, *,
               seed: int, device: str = "cpu", mixed_precision: str = "no", on_log: OnLog | None = None,
               progress: bool = False) -> dict:
    """RLOO (``trl.RLOOTrainer``); see :func:`train_online`."""
    return train_online("rloo", cfg, base_dir, prompts, reward_fn, out_dir, seed=seed, device=device,
                        mixed_precision=mixed_precision, on_log=on_log, progress=progress)
