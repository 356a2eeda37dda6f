"""DPO through TRL: preference pairs, then ``trl.DPOTrainer`` from the base model's directory.

Where the pairs come from (``dpo.pair_source``, reported as ``pair_source`` in the metrics):

- ``rank_lists``: rank lists that carry a prompt (the labelling app's exports, imported lists). A
  list's texts continue its prompt (the reward model reads ``prompt + text``), so each cross-tier
  pair is ``(prompt, better text, worse text)``: every such pair (``pairs: all``) or the best tier
  against each other text (``pairs: best_vs_rest``). Lists without a prompt are skipped;
- ``sampled``: when the lists have no prompt (the default corpus), ``samples_per_prompt``
  completions of the base per train prompt, drawn by the project's one sampler
  (:func:`rlhf.sampling.sample_completions`), scored by the reward (:class:`TRLReward` over a
  :mod:`rlhf.ppo.rewards` function) and ranked: every pair whose scores differ by more than
  ``min_score_gap`` (``all``), or the best against each other (``best_vs_rest``).

TRL arguments set here and why (besides :func:`rlhf.algorithms.trl_glue.training_arguments`): the
dataset's ``prompt`` is ``[BOS] + prompt`` spelled out (TRL tokenizes ``prompt + chosen`` with the
tokenizer's defaults, and a BERT-style tokenizer would add ``[CLS] ... [SEP]``: :func:`trl_tokenizer`
adds nothing, TRL appends the EOS text to each completion); ``per_device_train_batch_size =
batch_size``; ``beta``, ``loss_type``, ``label_smoothing``; ``max_length`` with
``truncation_mode="keep_start"``; ``precompute_ref_log_probs=False`` (the reference is re-loaded
from the policy's ``config._name_or_path``: the base directory).
"""
from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from rlhf.algorithms.config import DPOConfig
from rlhf.algorithms.trl_glue import (LogCallback, OnLog, TRLReward, check_prompt_ids, mean_of, train_and_save,
                                      training_arguments, trl_prompt, trl_tokenizer)


@dataclass(frozen=True)
class PreferencePair:
    """``chosen`` is preferred to ``rejected`` as a continuation of ``prompt`` (all plain text, no BOS/EOS)."""

    prompt: str
    chosen: str
    rejected: str


def _tier_pairs(prompt: str, tiers: Sequence[Sequence[str]], mode: str) -> list[PreferencePair]:
    """Pairs of one ranking (tiers best first): every cross-tier pair, or the best tier against the rest."""
    if mode == "best_vs_rest":
        return [PreferencePair(prompt, best, other) for best in tiers[0] for tier in tiers[1:] for other in tier]
    return [PreferencePair(prompt, better, worse) for i, upper in enumerate(tiers) for lower in tiers[i + 1:]
            for better in upper for worse in lower]


def pairs_from_ranklists(lists: Iterable, mode: str = "all") -> tuple[list[PreferencePair], dict]:
    """Pairs from rank lists with a prompt (:class:`rlhf.data.ranklist.RankList` or their JSON dicts).

    Returns ``(pairs, counts)``; ``counts``: ``lists_used``, ``lists_without_prompt`` (skipped).
    """
    pairs: list[PreferencePair] = []
    used = skipped = 0
    for obj in lists:
        prompt, tiers = (obj.get("prompt"), obj["tiers"]) if isinstance(obj, dict) else (obj.prompt, obj.tiers)
        if not prompt:
            skipped += 1
            continue
        used += 1
        pairs += _tier_pairs(prompt, tiers, mode)
    return pairs, {"lists_used": used, "lists_without_prompt": skipped}


def pairs_from_samples(model, tok, prompts: Sequence[str], reward: TRLReward, cfg: DPOConfig, *,
                       seed: int) -> tuple[list[PreferencePair], dict]:
    """``cfg.samples_per_prompt`` completions of ``model`` per prompt, ranked by ``reward``, paired.

    Identical completions of one prompt count once. Returns ``(pairs, counts)``; ``counts``:
    ``prompts_sampled``, ``completions``, ``prompts_without_pair`` (all completions scored alike).
    """
    from rlhf.sampling import sample_completions

    drawn = sample_completions(model, tok, prompts, n=cfg.samples_per_prompt, max_new_tokens=cfg.max_new_tokens,
                               seed=seed, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                               batch_size=cfg.reward_batch_size)
    groups = [(p, list(dict.fromkeys(cs))) for p, cs in zip(prompts, drawn)]  # distinct, in sampled order
    flat_prompts = [p for p, cs in groups for _ in cs]
    flat = [c for _, cs in groups for c in cs]
    scores = []
    for i in range(0, len(flat), cfg.reward_batch_size):
        scores += reward.score_texts(flat_prompts[i:i + cfg.reward_batch_size],
                                     flat[i:i + cfg.reward_batch_size]).tolist()
    pairs: list[PreferencePair] = []
    lonely, at = 0, 0
    for prompt, completions in groups:
        scored = sorted(zip(scores[at:at + len(completions)], completions), key=lambda sc: -sc[0])
        at += len(completions)
        found = [PreferencePair(prompt, hi, lo) for j, (s_hi, hi) in enumerate(scored)
                 for s_lo, lo in scored[j + 1:] if s_hi - s_lo > cfg.min_score_gap]
        if cfg.pairs == "best_vs_rest":
            found = [p for p in found if p.chosen == scored[0][1]]
        lonely += not found
        pairs += found
    return pairs, {"prompts_sampled": len(prompts), "completions": len(flat), "prompts_without_pair": lonely}


def resolve_pair_source(cfg: DPOConfig, lists: Sequence) -> str:
    """``'rank_lists'`` or ``'sampled'`` for ``cfg.pair_source`` (``auto``: lists when any carries a prompt)."""
    if cfg.pair_source != "auto":
        return cfg.pair_source
    has_prompt = any((obj.get("prompt") if isinstance(obj, dict) else obj.prompt) for obj in lists)
    return "rank_lists" if has_prompt else "sampled"


def preference_pairs(cfg: DPOConfig, base_dir: str | Path, *, lists: Sequence = (), prompts: Sequence[str] = (),
                     reward_fn=None, seed: int = 0) -> tuple[list[PreferencePair], dict]:
    """The pairs ``cfg`` asks for: from ``lists`` (rank lists) or sampled from the base on ``prompts``
    and ranked by ``reward_fn`` (a :mod:`rlhf.ppo.rewards` function). Capped to ``cfg.max_pairs``
    (a subset drawn with ``seed``). Returns ``(pairs, info)``; ``info['pair_source']`` says which."""
    source = resolve_pair_source(cfg, lists)
    if source == "rank_lists":
        pairs, info = pairs_from_ranklists(lists, cfg.pairs)
        if not pairs:
            raise ValueError("dpo.pair_source 'rank_lists': no rank list with a prompt (and two tiers) among "
                             f"{len(lists)} lists; use 'sampled' or 'auto'")
    else:
        from transformers import AutoModelForCausalLM

        from rlhf.tokenizer import load_tokenizer

        if reward_fn is None or not prompts:
            raise ValueError("dpo sampled pairs need train prompts and a reward function")
        tok = load_tokenizer(base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir)
        pairs, info = pairs_from_samples(model, tok, list(prompts), TRLReward(reward_fn, tok), cfg, seed=seed)
        del model
        if not pairs:
            raise ValueError(f"dpo: the {len(prompts)} prompts gave no pair of completions scored more than "
                             f"dpo.min_score_gap={cfg.min_score_gap} apart")
    if cfg.max_pairs and len(pairs) > cfg.max_pairs:
        pairs = random.Random(seed).sample(pairs, cfg.max_pairs)
    return pairs, {"pair_source": source, "pairs": len(pairs), **info}


def pair_dataset(tok, pairs: Sequence[PreferencePair]):
    """``datasets.Dataset`` of ``prompt`` (``[BOS] + prompt`` as text), ``chosen``, ``rejected``."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [trl_prompt(tok, p.prompt) for p in pairs],
                              "chosen": [p.chosen for p in pairs], "rejected": [p.rejected for p in pairs]})


def train_dpo(cfg: DPOConfig, base_dir: str | Path, pairs: Sequence[PreferencePair], out_dir: str | Path, *,
              seed: int, device: str = "cpu", mixed_precision: str = "no", on_log: OnLog | None = None,
              progress: bool = False) -> dict:
    """Train the causal LM saved in ``base_dir`` on ``pairs`` with TRL's DPO; save it in ``out_dir``.

    ``on_log(step, metrics)`` receives TRL's metrics each step (``loss``, ``rewards/chosen``,
    ``rewards/rejected``, ``rewards/accuracies``, ``rewards/margins``, ``logps/*``...). Returns the
    run's metrics: steps, pairs, first and final loss / reward accuracy / margin, wall time.
    """
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from rlhf.tokenizer import load_tokenizer

    if not pairs:
        raise ValueError("train_dpo: no preference pairs")
    base_dir = Path(base_dir).resolve()  # TRL re-loads the reference from config._name_or_path
    tok = load_tokenizer(base_dir)
    trl_tok = trl_tokenizer(tok)
    check_prompt_ids(tok, trl_tok, [p.prompt for p in pairs])
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    logs = LogCallback(on_log)
    with tempfile.TemporaryDirectory(prefix="trl-dpo-") as scratch:
        common = training_arguments(cfg, out_dir=scratch, seed=seed, device=device, mixed_precision=mixed_precision,
                                    progress=progress)
        args = TRLDPOConfig(**common, per_device_train_batch_size=cfg.batch_size, beta=cfg.beta,
                            loss_type=[cfg.loss_type], label_smoothing=cfg.label_smoothing, max_length=cfg.max_length,
                            truncation_mode="keep_start", precompute_ref_log_probs=False)
        trainer = DPOTrainer(model=model, args=args, train_dataset=pair_dataset(tok, pairs), processing_class=trl_tok,
                             callbacks=[logs])
        seconds = train_and_save(trainer, tok, out_dir, progress)
    history = logs.history
    tenth = max(len(history) // 10, 1)
    metrics = {"algorithm": "dpo", "steps": cfg.steps, "pairs": len(pairs), "seconds": seconds}
    for key, name in (("loss", "loss"), ("rewards/accuracies", "reward_accuracy"), ("rewards/margins", "margin")):
        metrics[f"first_{name}"] = mean_of(history, key, slice(0, tenth))
        metrics[f"final_{name}"] = mean_of(history, key, slice(-tenth, None))
    return {k: v for k, v in metrics.items() if v is not None}
