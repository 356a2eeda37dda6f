"""Benchmark: our listwise reward-model trainer vs TRL's RewardTrainer on the same rank lists.

Not a test. Same backbone (the base GPT-2), same data, same number of optimiser steps, same
init (seed 0), AdamW lr 1e-4, no weight decay, linear decay without warm-up, gradient clipping at
1.0, dropout disabled, 1 epoch, fp32 on CPU; the settings of ``shared/anchors/rm_anchor.py``
(DESIGN.md §8: TRL 414-450 s per epoch of 2000 lists on 2 cores, a plain loop 145-149 s):

(a) ``rlhf.reward.train_reward_model``: 8 lists of 4 texts a step, each text forwarded once
    (length-sorted forwards of <= ``forward_max_tokens`` padded tokens), length-bucketed lists;
(b) ``trl.RewardTrainer``: the same lists expanded into their 4 cross-tier (chosen, rejected)
    pairs, 32 pairs (= 64 sequences, 8 lists) a step.

Per epoch ours is faster; ``--equal-time`` (on by default with TRL) also asks what that buys: (c) ours
again, with as many epochs as fit in TRL's measured wall time for its one epoch (at least 1; the
same learning rate, decayed linearly over the longer run, the last weights kept), so the two
trainers' held-out accuracies compare at the same wall time.

Both are evaluated on the same held-out lists with :func:`rlhf.reward.evaluate_reward_model`.
``--ablations`` also times variants of (a) on ``--ablation-lists`` lists (no bucketing, one padded
batch per step, the lists fed as independent pairs) and a forward+backward micro-benchmark, to
show where the speed comes from. Writes ``reports/benchmarks/reward_model.json``. Wall-clock
seconds and process CPU seconds are both reported, with the load average around each run: on a
shared machine compare the two trainers' figures from the same run only.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/reward_model.py                 # full: 15+ min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/reward_model.py --lists 200     # quick check
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/reward_model.py --threads 1 --ablations   # busy machine

Uses ``trl`` and ``datasets`` (main dependencies) unless ``--skip-trl``. Uses
``models/base`` when it exists, else bootstraps a base GPT-2 with the project's ``base`` code
(cached under the temp directory).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from common import base_model_dir, read_corpus  # benchmarks/common.py (this script's folder is on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rlhf_ops.environment import openmp_defaults  # noqa: E402

openmp_defaults()  # before torch: OpenMP threads wait as in the pipeline's stages (both trainers)

import torch  # noqa: E402

from rlhf.reward.config import RewardModelConfig  # noqa: E402
from rlhf.reward.evaluate import evaluate_reward_model  # noqa: E402
from rlhf.reward.model import RewardScorer, load_reward_backbone  # noqa: E402
from rlhf.reward.train import train_reward_model  # noqa: E402
from rlhf.reward.train import encode_lists, score_batch  # noqa: E402
from rlhf.reward.evaluate import prepare_lists  # noqa: E402



def make_lists(pos: list[str], neg: list[str], n_train: int, n_held: int, seed: int = 1234):
    """Rank lists of 2 positive (tied) above 2 negative (tied) reviews, as in rm_anchor.py."""
    rng = random.Random(seed)
    n = n_train + n_held
    p, q = rng.sample(pos, 2 * n), rng.sample(neg, 2 * n)
    lists = [{"id": f"bench-{i}", "prompt": "", "tiers": [[p[2 * i], p[2 * i + 1]], [q[2 * i], q[2 * i + 1]]]}
             for i in range(n)]
    return lists[:n_train], lists[n_train:]


def bench_config(args, **overrides) -> RewardModelConfig:
    """Our trainer with the anchor's settings."""
    base = dict(backbone="base", max_length=args.max_length, lists_per_batch=8, learning_rate=args.lr,
                weight_decay=0.0, warmup_ratio=0.0, scheduler="linear", max_grad_norm=1.0, epochs=1,
                eval_every=0, early_stopping_patience=0, disable_dropout=True)
    base.update(overrides)
    return RewardModelConfig(**base)


def run_ours(args, base_dir: Path, train, held, name: str = "ours", **overrides) -> dict:
    cfg = bench_config(args, **overrides)
    torch.manual_seed(0)  # same score-head init as TRL's run
    model, tok = load_reward_backbone(cfg, base_dir)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    summary = train_reward_model(cfg, model, tok, train, held, None, seed=0, progress=False)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    ev = evaluate_reward_model(RewardScorer(model, tok, max_length=cfg.max_length), held, include_texts=False)
    out = {"name": name, "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k in overrides},
           "steps": summary["steps"], "seconds_per_epoch": summary["seconds_per_epoch"],
           "cpu_seconds_per_epoch": summary["train_cpu_seconds"] * summary["steps_per_epoch"] / summary["steps"],
           "train_call_wall_seconds": wall, "padding_fraction": summary["padding_fraction"],
           "dev_pairwise_accuracy": ev["metrics"]["pairwise_accuracy"],
           "dev_exact_order_accuracy": ev["metrics"]["exact_order_accuracy"],
           "n_truncated_train_texts": summary["n_truncated_train_texts"],
           "loadavg_1min_before_after": [load_before, load_after]}
    print(f"[bench] {name}: {json.dumps(out, ensure_ascii=False)}", flush=True)
    return out


def run_trl(args, base_dir: Path, train, held) -> dict:
    import trl
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    cfg = bench_config(args)
    torch.manual_seed(0)
    model, tok = load_reward_backbone(cfg, base_dir)  # same loading, pad token and init as ours
    views, _ = prepare_lists(train)
    seqs, _ = encode_lists(tok, views, cfg.max_length)  # pre-truncated: TRL would DROP longer pairs
    rows = {"chosen_ids": [], "rejected_ids": []}
    for v, s in zip(views, seqs):
        n_best = len(v.tiers[0])
        for w in range(n_best):
            for l in range(n_best, len(s)):
                rows["chosen_ids"].append(s[w])
                rows["rejected_ids"].append(s[l])
    ds = Dataset.from_dict(rows)
    out_dir = Path(tempfile.gettempdir()) / "rlhf-benchmarks" / "trl_out"
    targs = RewardConfig(output_dir=str(out_dir), per_device_train_batch_size=32, num_train_epochs=1,
                         learning_rate=args.lr, weight_decay=0.0, lr_scheduler_type="linear", warmup_steps=0,
                         max_grad_norm=1.0, max_length=cfg.max_length, bf16=False, fp16=False,
                         gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
                         eval_strategy="no", seed=0, logging_steps=50, disable_tqdm=True,
                         dataloader_num_workers=0, disable_dropout=True)
    trainer = RewardTrainer(model=model, args=targs, train_dataset=ds, processing_class=tok)
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = trainer.train()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = trainer.model.eval()
    ev = evaluate_reward_model(RewardScorer(model, tok, max_length=cfg.max_length), held, include_texts=False)
    out = {"name": "trl_reward_trainer", "trl_version": trl.__version__, "pairs": len(trainer.train_dataset),
           "steps": trainer.state.global_step, "seconds_per_epoch": wall, "cpu_seconds_per_epoch": cpu,
           "hf_train_runtime": result.metrics.get("train_runtime"),
           "dev_pairwise_accuracy": ev["metrics"]["pairwise_accuracy"],
           "dev_exact_order_accuracy": ev["metrics"]["exact_order_accuracy"],
           "loadavg_1min_before_after": [load_before, os.getloadavg()[0]]}
    print(f"[bench] trl: {json.dumps(out)}", flush=True)
    return out


def micro_benchmark(args, base_dir: Path, train, repeats: int = 5) -> dict:
    """Median seconds of one forward+backward of the same 32 random texts (one step) under variants."""
    cfg = bench_config(args)
    torch.manual_seed(0)
    model, tok = load_reward_backbone(cfg, base_dir)
    views, _ = prepare_lists(train)
    seqs, _ = encode_lists(tok, views, cfg.max_length)
    batch = random.Random(0).sample([s for ls in seqs for s in ls], 32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-9)

    def timed(texts, *, max_tokens=0, use_cache=False, dropout=0.0, threads=None) -> float:
        old_threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = dropout
        model.config.use_cache = use_cache
        model.train()
        times = []
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            scores, _, _ = score_batch(model, texts, tok.pad_token_id, max_tokens)
            scores.sum().backward()
            opt.zero_grad(set_to_none=True)
            if r:  # the first run warms up
                times.append(time.perf_counter() - t0)
        torch.set_num_threads(old_threads)
        model.config.use_cache = False
        return sorted(times)[len(times) // 2]

    res = {
        "threads": torch.get_num_threads(),
        "real_tokens": sum(len(s) for s in batch), "padded_width": max(len(s) for s in batch),
        "s_one_padded_batch": timed(batch),
        "s_length_sorted_chunks_1024_tokens": timed(batch, max_tokens=1024),
        "s_one_padded_batch_use_cache_true": timed(batch, use_cache=True),
        "s_one_padded_batch_dropout_0.1": timed(batch, dropout=0.1),
        "s_one_padded_batch_1_thread": timed(batch, threads=1),
        "s_one_padded_batch_2_threads": timed(batch, threads=2),
        "s_as_pairs_64_sequences": timed(batch + batch),
    }
    print(f"[bench] micro: {json.dumps(res)}", flush=True)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lists", type=int, default=2000, help="train rank lists (quick check: 200)")
    ap.add_argument("--held", type=int, default=500, help="held-out rank lists for dev accuracy")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--base-dir", default=str(ROOT / "models" / "base"))
    ap.add_argument("--base-cache", default=str(Path(tempfile.gettempdir()) / "rlhf-benchmarks"))
    ap.add_argument("--base-steps", type=int, default=300, help="LM steps when bootstrapping a base (anchor: 300)")
    ap.add_argument("--skip-trl", action="store_true", help="time only our trainer")
    ap.add_argument("--equal-time", action=argparse.BooleanOptionalAction, default=True,
                    help="also train ours for as many epochs as fit in TRL's wall time (needs TRL's run)")
    ap.add_argument("--ablations", action="store_true", help="also time variants of our trainer and a micro-benchmark")
    ap.add_argument("--ablation-lists", type=int, default=500, help="train lists of each ablation run")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for every run (0: torch's default; "
                    "on a shared, busy machine 1 is faster for both trainers)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "benchmarks" / "reward_model.json"))
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    pos, neg = read_corpus()
    train, held = make_lists(pos, neg, args.lists, args.held)
    held_texts = {t for rl in held for tier in rl["tiers"] for t in tier}
    lm_texts = [t for t in pos + neg if t not in held_texts]
    base_dir = base_model_dir(args.base_dir, args.base_cache, args.base_steps, lm_texts)
    report = {"settings": {"train_lists": args.lists, "held_lists": args.held, "k": 4, "max_length": args.max_length,
                           "lr": args.lr, "lists_per_step": 8, "trl_pairs_per_step": 32, "epochs": 1,
                           "base_dir": str(base_dir), "torch": torch.__version__, "threads": torch.get_num_threads(),
                           "cpu_count": os.cpu_count()}}
    report["ours"] = run_ours(args, base_dir, train, held)
    if not args.skip_trl:
        report["trl"] = run_trl(args, base_dir, train, held)
        report["speedup_per_epoch"] = report["trl"]["seconds_per_epoch"] / report["ours"]["seconds_per_epoch"]
        report["cpu_speedup_per_epoch"] = (report["trl"]["cpu_seconds_per_epoch"]
                                           / report["ours"]["cpu_seconds_per_epoch"])
        report["accuracy_delta"] = report["ours"]["dev_pairwise_accuracy"] - report["trl"]["dev_pairwise_accuracy"]
        if args.equal_time:
            epochs = max(1, int(report["trl"]["seconds_per_epoch"] // report["ours"]["seconds_per_epoch"]))
            same_time = run_ours(args, base_dir, train, held, name=f"ours_equal_time_{epochs}_epochs", epochs=epochs)
            same_time["epochs"] = epochs
            same_time["wall_seconds"] = same_time["seconds_per_epoch"] * epochs
            report["ours_equal_time"] = same_time
            report["equal_time_accuracy_delta"] = (same_time["dev_pairwise_accuracy"]
                                                   - report["trl"]["dev_pairwise_accuracy"])
    if args.ablations:
        small = train[: args.ablation_lists]
        report["ablations"] = {"train_lists": len(small), "runs": [
            run_ours(args, base_dir, small, held, name="ours"),
            run_ours(args, base_dir, small, held, name="ours_one_padded_batch_per_step", forward_max_tokens=0),
            run_ours(args, base_dir, small, held, name="ours_no_bucketing", bucket_batches=1),
            run_ours(args, base_dir, small, held, name="ours_no_bucketing_one_padded_batch", bucket_batches=1,
                     forward_max_tokens=0),
            run_pairs_in_our_loop(args, base_dir, small, held),
        ]}
        report["micro_benchmark"] = micro_benchmark(args, base_dir, train)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {k: report[k] for k in ("speedup_per_epoch", "accuracy_delta", "equal_time_accuracy_delta")
               if k in report}
    print(f"[bench] ours {report['ours']['seconds_per_epoch']:.1f} s/epoch, dev acc "
          f"{report['ours']['dev_pairwise_accuracy']:.3f}; "
          + (f"trl {report['trl']['seconds_per_epoch']:.1f} s/epoch, dev acc {report['trl']['dev_pairwise_accuracy']:.3f}; "
             if "trl" in report else "")
          + (f"ours in TRL's wall time ({report['ours_equal_time']['epochs']} epochs, "
             f"{report['ours_equal_time']['wall_seconds']:.1f} s): dev acc "
             f"{report['ours_equal_time']['dev_pairwise_accuracy']:.3f}; " if "ours_equal_time" in report else "")
          + json.dumps(summary) + f" -> {args.out}", flush=True)
    return report


def run_pairs_in_our_loop(args, base_dir: Path, train, held) -> dict:
    """Our trainer fed the lists expanded into 2-text lists (one per pair): the cost of not going listwise."""
    pair_lists = [{"id": f"{rl['id']}/{w}{l}", "prompt": "", "tiers": [[rl["tiers"][0][w]], [rl["tiers"][1][l]]]}
                  for rl in train for w in range(2) for l in range(2)]
    return run_ours(args, base_dir, pair_lists, held, name="ours_fed_pairs", lists_per_batch=32)


if __name__ == "__main__":
    main()
