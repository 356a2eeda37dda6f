"""The accelerate path of the trainers with mixed precision: bf16 autocast on the CPU here, CUDA where present."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.mark.slow
def test_rm_and_ppo_train_with_bf16_autocast_on_cpu():
    from gpu_check import timings

    out = timings("cpu", "bf16", layers=1, width=32, rm_steps=3, ppo_iterations=2)
    assert out["rm_seconds_per_step"] > 0 and out["ppo_episodes_per_second"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.py is the full check)")
def test_rm_and_ppo_train_on_cuda_bf16():
    from gpu_check import timings

    out = timings("cuda", "bf16", layers=2, width=64, rm_steps=3, ppo_iterations=2)
    assert out["device_name"] != "cpu" and out["ppo_episodes_per_second"] > 0


def test_fp16_on_cpu_is_refused_with_a_clear_error():
    from rlhf.compute import ComputeConfig, check_mixed_precision, make_accelerator
    from rlhf.config import ConfigError

    with pytest.raises(ConfigError, match="fp16.*needs a GPU"):
        check_mixed_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="fp16"):
        make_accelerator(ComputeConfig(device="cpu", mixed_precision="fp16"), stage="ppo")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            make_accelerator(ComputeConfig(device="cuda"), stage="ppo")
