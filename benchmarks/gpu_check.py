"""GPU check (not a test): the tiny profile on CUDA with bf16, then RM and PPO training of a ~100M GPT-2.

Run on a machine with a CUDA GPU, from the project root (nothing is downloaded):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_check.py                 # tiny profile + timings
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_check.py --skip-pipeline # timings only
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_check.py --device cpu --layers 2 --width 64 --skip-pipeline
                                                                              # the same code on the CPU, tiny

1. ``rlhf run`` on a copy of the project with ``tests/smoke/params.yaml`` and ``compute.device: cuda``,
   ``compute.mixed_precision: bf16`` (every stage, the registry, the evaluation on the GPU);
2. a GPT-2 of ``--layers`` x ``--width`` (default 12 x 768, ~100M parameters with the 4k character
   vocabulary; random weights: timing only) as base: seconds per reward-model step (8 lists of 4
   reviews) and PPO episodes per second (64 episodes of 16 tokens), bf16 autocast through
   ``accelerate``; peak GPU memory.

Prints one JSON summary and writes ``reports/benchmarks/gpu_check.json``. Put the figures in README
"Training on GPUs and several processes" with the date and the GPU's name.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distributed import corpus, prompts, rank_lists  # noqa: E402  benchmarks/distributed.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def tiny_pipeline(device: str, precision: str) -> dict:
    """``rlhf run`` of the tiny profile in a copy of the project on ``device`` with ``precision``."""
    import yaml

    sys.path.insert(0, str(ROOT))
    from tests.smoke.conftest import child_env, copy_project

    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "project")
        params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
        params["compute"].update(device=device, mixed_precision=precision)
        (project / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "rlhf_cli.main", "run"], cwd=project, env=child_env(project),
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"tiny pipeline failed on {device}/{precision}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        metrics = {name: json.loads((project / "metrics" / f"{name}.json").read_text(encoding="utf-8"))
                   for name in ("train_reward_model", "ppo", "evaluate_samples")}
        return {"seconds": round(seconds, 1), "rm_dev_pairwise": metrics["train_reward_model"]["best_dev_pairwise_accuracy"],
                "ppo_final_score": metrics["ppo"]["final_score"],
                "judge_tuned": metrics["evaluate_samples"]["tuned"]["judge_score"]}


def build_base(out: Path, layers: int, width: int) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlhf.tokenizer import build_char_tokenizer

    pos, neg = corpus()
    tok = build_char_tokenizer(pos + neg, vocab_size=4000)
    config = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=width, n_layer=layers, n_head=max(1, width // 64),
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def timings(device: str, precision: str, layers: int, width: int, rm_steps: int, ppo_iterations: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf.compute import ComputeConfig, make_accelerator
    from rlhf.config import from_dict
    from rlhf.ppo.config import PPOConfig
    from rlhf.ppo.model import PolicyWithValueHead
    from rlhf.ppo.rewards import RewardModelReward
    from rlhf.ppo.trainer import train_ppo
    from rlhf.reward.config import RewardModelConfig
    from rlhf.reward.model import load_reward_backbone, save_reward_model
    from rlhf.reward.train import train_reward_model
    from rlhf.tokenizer import load_tokenizer

    acc = make_accelerator(ComputeConfig(device=device, mixed_precision=precision), stage="ppo")
    with tempfile.TemporaryDirectory() as tmp:
        base = build_base(Path(tmp) / "base", layers, width)
        params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base).parameters())
        cfg = from_dict(RewardModelConfig, {"max_steps": rm_steps, "eval_every": 0}, prefix="reward_model")
        torch.manual_seed(0)
        model, tok = load_reward_backbone(cfg, base)
        stamps: list[float] = []

        def on_step(step, metrics):
            if device == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        train_reward_model(cfg, model, tok, rank_lists(cfg.lists_per_batch * rm_steps), [], None, seed=0,
                           on_step=on_step, progress=False, accelerator=acc)
        rm_step = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
        save_reward_model(model, tok, Path(tmp) / "rm", stats={"mean": 0.0, "std": 1.0})
        rm_peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
        del model

        ppo_cfg = from_dict(PPOConfig, {"iterations": ppo_iterations, "sample_every": 0, "checkpoint_every": 0},
                            prefix="ppo")
        tok = load_tokenizer(base)
        policy = PolicyWithValueHead.from_pretrained(base, seed=0)
        ref = AutoModelForCausalLM.from_pretrained(base)
        reward = RewardModelReward.from_pretrained(Path(tmp) / "rm", tok, normalization="stats")
        reward.scorer.to(acc.device)
        eps: list[float] = []
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        train_ppo(ppo_cfg, policy, ref, tok, reward, prompts(512), Path(tmp) / "policy", seed=0, progress=False,
                  checkpoint_dir=Path(tmp) / "ckpt", accelerator=acc, on_iteration=lambda i, m: eps.append(m["eps"]))
        ppo_peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"parameters": params, "rm_seconds_per_step": round(rm_step, 4), "rm_peak_gib": rm_peak,
            "ppo_episodes_per_second": round(statistics.median(eps[1:] or eps), 2), "ppo_peak_gib": ppo_peak,
            "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--rm-steps", type=int, default=20)
    parser.add_argument("--ppo-iterations", type=int, default=5)
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA device here; run it on a GPU machine (or --device cpu)")
    precision = args.precision if args.device == "cuda" else ("no" if args.precision == "fp16" else args.precision)
    summary = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "device": args.device,
               "precision": precision}
    if not args.skip_pipeline:
        summary["tiny_pipeline"] = tiny_pipeline(args.device, precision)
    summary["timings"] = timings(args.device, precision, args.layers, args.width, args.rm_steps, args.ppo_iterations)
    print(json.dumps(summary, indent=2))
    out = ROOT / "reports/benchmarks/gpu_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
