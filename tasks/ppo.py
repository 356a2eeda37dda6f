"""Stage ``ppo``: fine-tune the base LM against the reward model with PPO; register ``policy``."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from rlhf.params import Params
from tasks.stage import read_jsonl, stage_main

STAGE = "ppo"
BASE_DIR = Path("models/base")
RM_DIR = Path("models/reward_model")
POLICY_DIR = Path("models/policy")
REPORT_DIR = Path("reports/ppo")
PROMPTS = Path("data/prepared/prompts.jsonl")
# Resumable checkpoints live outside DVC's outs (DVC deletes outs before re-running a stage),
# keyed by everything that determines the run (rlhf.ppo.trainer.run_fingerprint), so a changed
# input never resumes a stale run.
CHECKPOINTS = Path("checkpoints/ppo")
METRIC_COLUMNS = ["iteration", "objective/scores", "objective/kl", "objective/rlhf_reward", "objective/entropy",
                  "objective/ngram_overlap", "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg",
                  "loss/value_avg", "val/clipfrac_avg", "val/ratio", "val/num_eos_tokens", "kl_coef", "eps"]


def run_inputs(params: Params, root: Path) -> dict:
    """What determines the run besides the PPO settings, prompts and seed: the input models and the reward source."""
    from rlhf.config import to_dict
    from rlhf.files import dir_hash

    inputs = {"base": dir_hash(root / BASE_DIR)}
    if params.ppo.reward_source == "reward_model":
        inputs["reward_model"] = dir_hash(root / RM_DIR)
    else:
        inputs["judge"] = to_dict(params.eval.judge)
    return inputs


def samples_markdown(tables: list[tuple[int, list[dict]]]) -> str:
    from rlhf.evaluation.report import escape_cell

    lines = ["# PPO samples during training", ""]
    for iteration, rows in tables:
        lines += [f"## Iteration {iteration}", "", "| prompt | completion | score |", "|---|---|---:|"]
        lines += [f"| {escape_cell(r['prompt'])} | {escape_cell(r['completion'])} | {r['score']:.3f} |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def run(params: Params, root: Path = Path(".")) -> dict:
    """PPO from ``models/base`` against the configured reward; save ``models/policy/``; register it."""
    from transformers import AutoModelForCausalLM

    from rlhf.ppo.model import PolicyWithValueHead
    from rlhf.ppo.rewards import build_reward_fn
    from rlhf.ppo.trainer import run_fingerprint, train_ppo
    from rlhf.seed import seed_everything
    from rlhf.tokenizer import load_tokenizer
    from rlhf_ops import registry, tracking
    from rlhf_ops.plots import write_csv

    from rlhf.compute import stage_accelerator
    from rlhf.distributed import is_main

    cfg = params.ppo
    accelerator = stage_accelerator(params.compute, STAGE)
    main = is_main(accelerator)
    seed_everything(params.seed)  # the same on every process: they draw the global batch's random numbers
    prompts = [r["prompt"] for r in read_jsonl(root / PROMPTS) if r.get("split") == "train"]
    if not prompts:
        raise ValueError(f"{PROMPTS}: no train prompts; run the prepare stage")
    tok = load_tokenizer(root / BASE_DIR)
    policy = PolicyWithValueHead.from_pretrained(root / BASE_DIR, seed=params.seed)
    ref = AutoModelForCausalLM.from_pretrained(root / BASE_DIR)
    reward_fn = build_reward_fn(cfg, tok, reward_model_dir=root / RM_DIR, judge_cfg=params.eval.judge)
    if accelerator is not None and hasattr(reward_fn, "scorer"):
        reward_fn.scorer.to(accelerator.device)

    inputs = run_inputs(params, root)
    fingerprint = run_fingerprint(cfg, prompts, params.seed, inputs)
    checkpoint_dir = root / CHECKPOINTS / fingerprint
    resumed_from = None
    if checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()) and cfg.resume:
        resumed_from = sorted(p.name for p in checkpoint_dir.iterdir())[-1]
        if main:
            print(f"ppo: resuming from {checkpoint_dir / resumed_from}")
    policy_dir = root / POLICY_DIR
    if policy_dir.exists() and main:
        shutil.rmtree(policy_dir)

    history: list[dict] = []
    sample_tables: list[tuple[int, list[dict]]] = []

    def on_iteration(iteration: int, metrics: dict) -> None:
        history.append({"iteration": iteration, **metrics})
        tracking.log_metrics(metrics, step=iteration)

    def on_samples(iteration: int, rows: list[dict]) -> None:
        sample_tables.append((iteration, rows))
        tracking.log_table({k: [r[k] for r in rows] for k in ("prompt", "completion", "score")},
                           f"samples/iteration_{iteration:04d}.json")

    summary = train_ppo(cfg, policy, ref, tok, reward_fn, prompts, policy_dir, seed=params.seed,
                        on_iteration=on_iteration, on_samples=on_samples, checkpoint_dir=checkpoint_dir,
                        run_inputs=inputs, accelerator=accelerator)
    if not main:
        return {}

    report = root / REPORT_DIR
    # The full curve: on a resumed run the trainer's history includes the iterations before the kill.
    full = summary.pop("history", None) or history
    write_csv(report / "metrics.csv", [{**m, "iteration": i} for i, m in enumerate(full, 1)], METRIC_COLUMNS)
    (report / "samples.md").write_text(samples_markdown(sample_tables), encoding="utf-8")
    tracking.log_artifact(report, "reports")
    version, new = registry.register_model_dir(policy_dir, registry.POLICY,
                                               tags={"rlhf.ppo.fingerprint": fingerprint, "rlhf.algorithm": "ppo"})
    summary = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) or v is None}
    return {**{k: (round(v, 5) if isinstance(v, float) else v) for k, v in summary.items()},
            "resumed": resumed_from is not None, "registry": {"version": int(version.version), "new_version": new}}


if __name__ == "__main__":
    sys.exit(stage_main(STAGE, run, sections=("seed", "ppo")))
