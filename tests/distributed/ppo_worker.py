"""One worker of a data-parallel PPO run (started by torchrun from test_distributed_ppo.py).

argv: base_dir out_json iterations [checkpoint_dir [die_after]]. PPO on a tiny GPT-2 against a toy reward with
an Accelerator; the main process writes every iteration's metrics and a checksum of the weights.
With ``die_after`` every worker SIGKILLs itself after that iteration (a killed run).
"""
import json
import os
import signal
import sys
from pathlib import Path

import torch


def main() -> None:
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM

    from rlhf.config import from_dict
    from rlhf.ppo.config import PPOConfig
    from rlhf.ppo.model import PolicyWithValueHead
    from rlhf.ppo.trainer import train_ppo
    from rlhf.tokenizer import load_tokenizer
    from tests.rlhf.ppo.toy_rewards import CharShareReward

    base_dir, out_json, iterations = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    checkpoint_dir = Path(sys.argv[4]) if len(sys.argv) > 4 else out_json.parent / "no-checkpoints"
    die_after = int(sys.argv[5]) if len(sys.argv) > 5 else 0

    def on_iteration(iteration: int, metrics: dict) -> None:
        if iteration == die_after:
            os.kill(os.getpid(), signal.SIGKILL)
    torch.set_num_threads(1)
    acc = Accelerator(cpu=True)
    cfg = from_dict(PPOConfig, {"iterations": iterations, "batch_size": 8, "num_minibatches": 2, "ppo_epochs": 2,
                                "lr": 3e-3, "max_new_tokens": 6, "sample_every": 0, "checkpoint_every": 2,
                                "keep_checkpoints": True, "reward_batch_size": 8}, prefix="ppo")
    tok = load_tokenizer(base_dir)
    policy = PolicyWithValueHead.from_pretrained(base_dir, seed=0)
    ref = AutoModelForCausalLM.from_pretrained(base_dir)
    prompts = ["这个东西", "质量", "服务真的", "物流很", "价格", "包装有点", "颜色", "味道还是"]
    summary = train_ppo(cfg, policy, ref, tok, CharShareReward("好"), prompts, out_json.parent / "policy", seed=0,
                        progress=False, checkpoint_dir=checkpoint_dir, accelerator=acc,
                        on_iteration=on_iteration)
    if acc.is_main_process:
        weights = sum(float(p.double().sum()) for p in policy.parameters())
        keys = ("objective/scores", "objective/kl", "kl_coef", "policy/approxkl_avg", "loss/value_avg",
                "objective/entropy", "policy/clipfrac_avg")
        out_json.write_text(json.dumps({"history": [{k: h[k] for k in keys} for h in summary["history"]],
                                        "weights": weights, "world": acc.num_processes,
                                        "resumed_from": summary["resumed_from"]}))
    acc.wait_for_everyone()
    if acc.num_processes > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
