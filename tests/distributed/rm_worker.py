"""One worker of a data-parallel reward-model run (started by torchrun from test_distributed_rm.py).

argv: base_dir out_json [grad_accum]. Trains a tiny RM on toy lists with an Accelerator; the main
process writes the loss curve, dev accuracies and a checksum of the final weights to out_json.
"""
import json
import sys

import torch


def main() -> None:
    from accelerate import Accelerator

    from rlhf.config import from_dict
    from rlhf.reward.config import RewardModelConfig
    from rlhf.reward.model import load_reward_backbone
    from rlhf.reward.train import train_reward_model
    from tests.toys import toy_lists

    base_dir, out_json = sys.argv[1], sys.argv[2]
    accum = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    torch.set_num_threads(1)
    acc = Accelerator(cpu=True)
    cfg = from_dict(RewardModelConfig, {"max_length": 32, "lists_per_batch": 8, "learning_rate": 3e-3,
                                        "warmup_ratio": 0.1, "epochs": 2, "eval_every": 4, "batch_size_eval": 16,
                                        "forward_max_tokens": 64}, prefix="reward_model")
    torch.manual_seed(0)
    model, tok = load_reward_backbone(cfg, base_dir)
    curve = []
    summary = train_reward_model(cfg, model, tok, toy_lists(37, 1), toy_lists(12, 2), None, seed=0,
                                 on_step=lambda step, m: curve.append(m["train/loss"]), progress=False,
                                 accelerator=acc, micro_batches=accum)
    if acc.is_main_process:
        weights = sum(float(p.double().sum()) for p in model.parameters())
        json.dump({"curve": curve, "weights": weights, "world": acc.num_processes,
                   "dev": summary["best_dev_pairwise_accuracy"], "steps": summary["steps"]}, open(out_json, "w"))
    acc.wait_for_everyone()
    if acc.num_processes > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
