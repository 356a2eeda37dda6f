"""Training the reward model on batches of rank lists with the listwise rank loss.

One optimiser step: ``lists_per_batch`` rank lists; each of their texts is forwarded once (sorted
by length and cut into right-padded forwards of at most ``forward_max_tokens`` padded tokens), and
every cross-tier pair of a list is formed from those scores (:func:`rank_loss`); one backward.
Lists of similar length share a batch (length bucketing, seeded), so padding stays small.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_scheduler

from rlhf.config import to_dict
from rlhf.distributed import all_sum, gather_strided, is_main, rank_and_world, shard
from rlhf.models.base_lm import length_bucketed_batches
from rlhf.reward.config import RewardModelConfig
from rlhf.reward.evaluate import InvalidRankListError, RankListView, as_rank_list, prepare_lists, ranking_metrics
from rlhf.reward.loss import build_rank_pairs, rank_loss
from rlhf.reward.model import (RewardScorer, encode_texts, forward_scores, reward_stats,
                               save_reward_model, set_dropout)
from rlhf.seed import seed_everything
from rlhf.tokenizer import pad_right

OnStep = Callable[[int, dict], None]


def encode_lists(tok: PreTrainedTokenizerBase, views: list[RankListView], max_length: int
                 ) -> tuple[list[list[list[int]]], int]:
    """Ids of every text of every list (``[BOS] prompt+text [EOS]``), and how many were truncated."""
    flat, truncated = encode_texts(tok, [t for v in views for t in v.texts()], max_length)
    out, pos = [], 0
    for v in views:
        k = sum(len(t) for t in v.tiers)
        out.append(flat[pos:pos + k])
        pos += k
    return out, sum(truncated)


def plan_forward_chunks(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Group text indices into forwards of similar length, each padded to at most ``max_tokens`` tokens.

    Longest texts first; a chunk grows while ``count * its longest length <= max_tokens`` (a text
    longer than the budget gets a chunk of its own). ``max_tokens = 0``: one chunk of everything.
    Every index appears exactly once, so every text is still forwarded once per step.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if not max_tokens:
        return [order]
    chunks: list[list[int]] = []
    for i in order:
        if chunks and (len(chunks[-1]) + 1) * lengths[chunks[-1][0]] <= max_tokens:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def score_batch(model: PreTrainedModel, seqs: list[list[int]], pad_id: int, max_tokens: int
                ) -> tuple[torch.Tensor, int, int]:
    """Scores (n_texts,) of ``seqs`` in their order, with gradients, forwarded in length-sorted chunks.

    Returns ``(scores, real_tokens, padded_slots)``; chunks are right-padded.
    """
    chunks = plan_forward_chunks([len(s) for s in seqs], max_tokens)
    device = next(model.parameters()).device
    parts, real, slots = [], 0, 0
    for idx in chunks:
        ids, mask = pad_right([seqs[i] for i in idx], pad_id)  # (chunk, width)
        parts.append(forward_scores(model, ids.to(device), mask.to(device)))
        real += int(mask.sum())
        slots += mask.numel()
    order = torch.tensor([i for idx in chunks for i in idx], device=device)
    return torch.cat(parts)[torch.argsort(order)], real, slots


class BatchScores(torch.nn.Module):
    """A step's chunked forwards as ONE module call: ``forward(seqs) -> scores (n_texts,)``.

    Under data parallelism (DDP, FSDP, DeepSpeed through ``accelerate``) a module may be called once
    per backward; the chunks of a step (:func:`score_batch`) are several calls of the inner model,
    so the wrapper is what gets prepared. A parameter used by several chunks is fine: its
    gradient is summed in autograd before the all-reduce hook fires.
    """

    def __init__(self, model: PreTrainedModel, pad_id: int, max_tokens: int):
        super().__init__()
        self.model = model
        self.pad_id = pad_id
        self.max_tokens = max_tokens

    def forward(self, seqs: list[list[int]]) -> torch.Tensor:
        return score_batch(self.model, seqs, self.pad_id, self.max_tokens)[0]


def padding_counts(seqs: list[list[int]], max_tokens: int) -> tuple[int, int]:
    """``(real tokens, padded slots)`` of the forwards :func:`score_batch` makes for ``seqs``."""
    lengths = [len(s) for s in seqs]
    chunks = plan_forward_chunks(lengths, max_tokens)
    return sum(lengths), sum(len(idx) * max(lengths[i] for i in idx) for idx in chunks)


def make_optimizer(model: PreTrainedModel, cfg: RewardModelConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases and LayerNorm weights)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate)


def score_all(scorer: RewardScorer, seqs: list[list[int]], batch_size: int, accelerator=None) -> torch.Tensor:
    """Raw scores (n,) of every sequence; with N processes each scores its strided share, then all gather."""
    local = scorer.score_encoded(shard(seqs, accelerator), batch_size=batch_size)
    return gather_strided(local, len(seqs), accelerator)


def dev_evaluation(scorer: RewardScorer, seqs: list[list[int]], pairs, cfg: RewardModelConfig, accelerator=None
                   ) -> tuple[dict[str, float], torch.Tensor]:
    """Score all dev texts once; metrics ``dev/loss``, ``dev/pairwise_accuracy``, ... and the raw scores."""
    scores = score_all(scorer, seqs, cfg.batch_size_eval, accelerator)
    loss, _ = rank_loss(scores, pairs, margin=cfg.margin, margin_per_tier_gap=cfg.margin_per_tier_gap,
                        center_coef=cfg.center_coef)
    ranking = ranking_metrics(scores, pairs)
    metrics = {"dev/loss": loss.item(), "dev/pairwise_accuracy": ranking["pairwise_accuracy"],
               "dev/exact_order_accuracy": ranking["exact_order_accuracy"],
               "dev/kendall_tau_b": ranking["kendall_tau_b"], "dev/reward_mean": scores.mean().item(),
               "dev/reward_std": scores.std(unbiased=False).item()}
    return metrics, scores


def prefix_copies(lists: Sequence[Any], fraction: float, min_chars: int, seed: int) -> list[dict[str, Any]]:
    """Copies of about ``fraction`` of the corpus-built ``lists`` with every text cut to a random prefix.

    Only lists whose ``source`` is ``'corpus'`` (built from a labelled corpus, where a text's
    label is its tier and a review's opening carries it) are copied; human and imported lists are
    never cut. A text is cut to a length drawn uniformly from ``[min(min_chars, len), len]``; a
    copy whose cut texts are no longer distinct is left out. Seeded by ``seed``: the same lists
    give the same copies. Ids get the suffix ``~prefix``.
    """
    if fraction <= 0:
        return []
    rng = random.Random(f"prefix-augment-{seed}")
    copies = []
    for obj in lists:
        source = obj.get("source") if isinstance(obj, dict) else getattr(obj, "source", None)
        if source != "corpus" or rng.random() >= fraction:
            continue
        try:
            view = as_rank_list(obj, len(copies))
        except InvalidRankListError:  # the original is refused or counted by prepare_lists; no copy of it
            continue
        tiers = [[t[:rng.randint(min(min_chars, len(t)), len(t))] for t in tier] for tier in view.tiers]
        texts = [t for tier in tiers for t in tier]
        if len(set(texts)) == len(texts) and all(texts):
            copies.append({"id": f"{view.id}~prefix", "prompt": view.prompt, "tiers": tiers, "source": "corpus"})
    return copies


def train_reward_model(cfg: RewardModelConfig, model: PreTrainedModel, tok: PreTrainedTokenizerBase,
                       train_lists: Iterable[Any], dev_lists: Iterable[Any], out_dir: str | Path | None, *,
                       seed: int, on_step: OnStep | None = None, progress: bool = True,
                       accelerator=None, micro_batches: int = 1) -> dict[str, Any]:
    """Train ``model`` (an RM from :func:`load_reward_backbone`) on rank lists; save the best to ``out_dir``.

    AdamW, warm-up then ``cfg.scheduler``, gradient clipping, dev evaluation every
    ``cfg.eval_every`` steps and at the end; the weights with the best dev pairwise accuracy
    (ties: lower dev loss) are restored at the end; early stopping after
    ``cfg.early_stopping_patience`` evaluations without improvement. Without dev lists the last
    weights are kept and the reward statistics come from the train texts.

    ``on_step(step, metrics)`` gets, after optimiser step ``step`` (1-based), ``train/loss``,
    ``train/pair_accuracy``, ``train/exact_order_accuracy``, ``train/lr``, ``train/grad_norm``,
    ``train/padding_fraction``, and on evaluation steps the ``dev/...`` metrics as well.
    Writes ``save_reward_model`` files (with ``reward_stats.json`` of the dev scores) to
    ``out_dir`` unless it is None. Returns a summary dict of plain numbers plus ``eval_history``.
    Seed torch before creating the model's score head; ``seed`` here drives batching.

    ``accelerator``: an :class:`accelerate.Accelerator` for a data-parallel run (None: one plain
    process). Every rank draws the same global batches of ``lists_per_batch`` lists and forwards
    its strided share of each; the loss of a share is weighted by its share of the batch's lists,
    so the summed gradient is that of the whole batch and the result does not depend on the
    process count. ``micro_batches`` > 1 splits a rank's share into that many forward/backward
    passes of one optimiser step (gradient accumulation: less memory, the same step). Only the
    main process saves.
    """
    seed_everything(seed)
    train_lists = list(train_lists)
    augmented = prefix_copies(train_lists, cfg.prefix_augment, cfg.prefix_min_chars, seed)
    train_views, train_skipped = prepare_lists(train_lists + augmented, cfg.on_invalid_list)
    dev_views, dev_skipped = prepare_lists(dev_lists, cfg.on_invalid_list)
    if not train_views:
        raise ValueError(f"train_reward_model: no valid train rank list (skipped: {train_skipped or 'none'})")
    train_seqs, n_trunc_train = encode_lists(tok, train_views, cfg.max_length)
    train_sizes = [[len(t) for t in v.tiers] for v in train_views]
    list_len = [max(len(s) for s in seqs) for seqs in train_seqs]
    dev_seqs, n_trunc_dev = encode_lists(tok, dev_views, cfg.max_length) if dev_views else ([], 0)
    dev_flat = [s for seqs in dev_seqs for s in seqs]
    dev_pairs = build_rank_pairs([v.tiers for v in dev_views], [v.id for v in dev_views]) if dev_views else None

    if cfg.dropout is not None or cfg.disable_dropout:  # an explicit dropout wins over disable_dropout
        set_dropout(model, cfg.dropout if cfg.dropout is not None else 0.0)
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    pad_id = tok.pad_token_id
    _, world = rank_and_world(accelerator)
    if accelerator is not None:
        model.to(accelerator.device)
    scorer = RewardScorer(model, tok, max_length=cfg.max_length, batch_size=cfg.batch_size_eval)
    opt = make_optimizer(model, cfg)
    forward = BatchScores(model, pad_id, cfg.forward_max_tokens)
    micro_steps = micro_batches
    if accelerator is not None:
        forward, opt = accelerator.prepare(forward, opt)  # DDP / FSDP / DeepSpeed wrapper, device placement
    progress = progress and is_main(accelerator)
    steps_per_epoch = math.ceil(len(train_views) / cfg.lists_per_batch)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    sched = get_scheduler(cfg.scheduler, opt, num_warmup_steps=round(cfg.warmup_ratio * total_steps),
                          num_training_steps=total_steps)
    rng = random.Random(seed)

    step, best, bad_evals, stopped_early = 0, None, 0, False
    best_state: dict[str, torch.Tensor] | None = None
    best_dev_scores: torch.Tensor | None = None
    history: list[dict[str, float]] = []
    train_s = train_cpu_s = eval_s = 0.0
    slots = real = 0
    loss_ema = acc_ema = None
    bar = tqdm(total=total_steps, desc="reward_model: train", disable=not progress, mininterval=2.0)
    model.train()
    while step < total_steps and not stopped_early:
        for batch in length_bucketed_batches(list_len, cfg.lists_per_batch, rng, cfg.bucket_batches):
            t0, c0 = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            # this rank's share of the batch's lists, in micro-batches; a rank with no list forwards one with
            # weight 0, so every rank takes part in every gradient all-reduce
            mine = shard(batch, accelerator)
            has_lists = bool(mine)
            mine = mine or batch[:1]
            groups = [g for g in (mine[j::micro_steps] for j in range(micro_steps)) if g]
            # summed over ranks: rank loss x lists, correct pairs, pairs, lists all right, lists, real, slots
            totals = torch.zeros(7, dtype=torch.float64)
            for j, group in enumerate(groups):
                seqs = [s for i in group for s in train_seqs[i]]
                pairs = build_rank_pairs([train_sizes[i] for i in group], [train_views[i].id for i in group])
                sync = accelerator.no_sync(forward) if accelerator is not None and j < len(groups) - 1 \
                    else contextlib.nullcontext()
                with sync:
                    scores = forward(seqs)  # (n_texts,)
                    loss, stats = rank_loss(scores, pairs, margin=cfg.margin,
                                            margin_per_tier_gap=cfg.margin_per_tier_gap, center_coef=cfg.center_coef)
                    # mean over this group's lists x (its lists / the batch's lists), x world (DDP averages)
                    scaled = loss * (len(group) * world / len(batch) if has_lists else 0.0)
                    if accelerator is not None:
                        accelerator.backward(scaled)
                    else:
                        scaled.backward()
                if has_lists:
                    n_real, n_slots = padding_counts(seqs, cfg.forward_max_tokens)
                    totals += torch.tensor([stats["loss"] * len(group), stats["pair_accuracy"] * pairs.n_pairs,
                                            pairs.n_pairs, stats["exact_order_accuracy"] * len(group), len(group),
                                            n_real, n_slots], dtype=torch.float64)
            totals = all_sum(totals, accelerator)
            stats = {"loss": float(totals[0] / totals[4]), "pair_accuracy": float(totals[1] / totals[2]),
                     "exact_order_accuracy": float(totals[3] / totals[4])}
            n_real, n_slots = int(totals[5]), int(totals[6])
            max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
            if accelerator is not None:
                grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), max_norm))
            else:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
            opt.step()
            sched.step()
            step += 1
            train_s += time.perf_counter() - t0
            train_cpu_s += time.process_time() - c0
            slots += n_slots
            real += n_real
            loss_ema = stats["loss"] if loss_ema is None else 0.95 * loss_ema + 0.05 * stats["loss"]
            acc_ema = stats["pair_accuracy"] if acc_ema is None else 0.95 * acc_ema + 0.05 * stats["pair_accuracy"]
            metrics = {"train/loss": stats["loss"], "train/pair_accuracy": stats["pair_accuracy"],
                       "train/exact_order_accuracy": stats["exact_order_accuracy"],
                       "train/lr": sched.get_last_lr()[0], "train/grad_norm": grad_norm,
                       "train/padding_fraction": 1.0 - n_real / n_slots}
            last = step >= total_steps
            if dev_pairs is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or last):
                t1 = time.perf_counter()
                dev, dev_scores = dev_evaluation(scorer, dev_flat, dev_pairs, cfg, accelerator)
                model.train()
                eval_s += time.perf_counter() - t1
                metrics.update(dev)
                history.append({"step": step, **dev})
                key = (dev["dev/pairwise_accuracy"], -dev["dev/loss"])
                if best is None or key > best:
                    best, bad_evals = key, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    best_dev_scores = dev_scores
                    best_step = step
                else:
                    bad_evals += 1
                    stopped_early = bool(cfg.early_stopping_patience) and bad_evals >= cfg.early_stopping_patience
                bar.set_postfix(loss=f"{loss_ema:.3f}", acc=f"{acc_ema:.3f}",
                                dev_acc=f"{dev['dev/pairwise_accuracy']:.3f}", refresh=False)
            else:
                bar.set_postfix(loss=f"{loss_ema:.3f}", acc=f"{acc_ema:.3f}", refresh=False)
            bar.update(1)
            if on_step is not None:
                on_step(step, metrics)
            if last or stopped_early:
                break
    bar.close()
    model.eval()

    if best_state is not None:
        model.load_state_dict(best_state)
        stats_scores = best_dev_scores
    else:  # no dev lists: keep the last weights, statistics from the train texts
        best_step = step
        stats_scores = score_all(scorer, [s for seqs in train_seqs for s in seqs], cfg.batch_size_eval, accelerator)
    rstats = reward_stats(stats_scores)
    if out_dir is not None and is_main(accelerator):
        save_reward_model(model, tok, out_dir, stats=rstats, config=to_dict(cfg))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    best_eval = next((h for h in history if h["step"] == best_step), {})
    return {
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "epochs": step / steps_per_epoch,
        "best_step": best_step,
        "stopped_early": stopped_early,
        "best_dev_pairwise_accuracy": best_eval.get("dev/pairwise_accuracy", float("nan")),
        "best_dev_exact_order_accuracy": best_eval.get("dev/exact_order_accuracy", float("nan")),
        "best_dev_kendall_tau_b": best_eval.get("dev/kendall_tau_b", float("nan")),
        "best_dev_loss": best_eval.get("dev/loss", float("nan")),
        "train_loss_final": loss_ema,
        "train_pair_accuracy_final": acc_ema,
        "train_seconds": train_s,
        "train_cpu_seconds": train_cpu_s,
        "eval_seconds": eval_s,
        "seconds_per_epoch": train_s * steps_per_epoch / step,
        "texts_per_second": sum(len(s) for s in train_seqs) * step / steps_per_epoch / train_s if train_s else 0.0,
        "padding_fraction": 1.0 - real / slots,
        "n_train_lists": len(train_views),
        "n_prefix_augmented_lists": len(augmented),
        "n_dev_lists": len(dev_views),
        "n_train_lists_skipped": sum(train_skipped.values()),
        "n_dev_lists_skipped": sum(dev_skipped.values()),
        "n_truncated_train_texts": n_trunc_train,
        "n_truncated_dev_texts": n_trunc_dev,
        "reward_mean": rstats["mean"],
        "reward_std": rstats["std"],
        "eval_history": history,
    }
