"""Stage ``train_reward_model``: a scalar reward learned from rank lists with the listwise rank loss."""
from __future__ import annotations

import sys
from pathlib import Path

from rlhf.params import Params
from tasks.stage import stage_main

STAGE = "train_reward_model"
MODEL_DIR = Path("models/reward_model")
REPORT_DIR = Path("reports/reward_model")
RANKLISTS = Path("data/prepared/ranklists")
BASE_DIR = Path("models/base")


def run(params: Params, root: Path = Path(".")) -> dict:
    """Train the RM on the train lists, keep the best by dev pairwise accuracy, save ``models/reward_model/``."""
    import shutil

    import torch

    from rlhf.compute import stage_accelerator
    from rlhf.data.ranklist import read_ranklists
    from rlhf.distributed import is_main
    from rlhf.reward.model import load_reward_backbone
    from rlhf.reward.train import train_reward_model
    from rlhf_ops import tracking
    from rlhf_ops.plots import write_csv

    cfg = params.reward_model
    accelerator = stage_accelerator(params.compute, STAGE)
    main = is_main(accelerator)
    train = read_ranklists(root / RANKLISTS / "train.jsonl")
    dev = read_ranklists(root / RANKLISTS / "dev.jsonl", allow_empty=True)
    torch.manual_seed(params.seed)  # the new score head
    model, tok = load_reward_backbone(cfg, root / BASE_DIR)

    curve: list[dict] = []
    step_logger = tracking.StepLogger(every=5)

    def on_step(step: int, metrics: dict) -> None:
        if step % 5 == 0 or any(k.startswith("dev/") for k in metrics):
            curve.append({"step": step, **metrics})
        step_logger(step, metrics)

    model_dir = root / MODEL_DIR
    if model_dir.exists() and main:
        shutil.rmtree(model_dir)
    summary = train_reward_model(cfg, model, tok, train, dev, model_dir, seed=params.seed,
                                 on_step=on_step if main else None, accelerator=accelerator,
                                 micro_batches=params.compute.gradient_accumulation_steps)
    if not main:
        return {}
    step_logger.flush()
    history = summary.pop("eval_history")
    report = root / REPORT_DIR
    write_csv(report / "train_curve.csv", [r for r in curve if "train/loss" in r], ["step", "train/loss",
              "train/pair_accuracy", "train/lr"])
    write_csv(report / "dev_curve.csv", history, ["step", "dev/loss", "dev/pairwise_accuracy",
                                                  "dev/exact_order_accuracy", "dev/kendall_tau_b"])
    tracking.log_artifact(report / "train_curve.csv", "reports")
    tracking.log_artifact(report / "dev_curve.csv", "reports")
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in summary.items()}


if __name__ == "__main__":
    sys.exit(stage_main(STAGE, run, sections=("seed", "reward_model")))
