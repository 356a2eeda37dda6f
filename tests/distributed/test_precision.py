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
    assert out["rm_device"] == out["ppo_device"] == "cpu"
    assert out["rm_seconds_per_step"] > 0 and out["ppo_episodes_per_second"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.py is the full check)")
def test_rm_and_ppo_train_on_cuda_bf16():
    from gpu_check import timings

    out = timings("cuda", "bf16", layers=2, width=64, rm_steps=3, ppo_iterations=2)
    assert out["rm_device"].startswith("cuda") and out["ppo_device"].startswith("cuda"), out
    assert out["ppo_episodes_per_second"] > 0


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.py is the full check)")
def test_base_pretraining_and_trl_algorithms_train_on_cuda_bf16():
    from gpu_check import algorithm_timings, base_timing

    base = base_timing("cuda", "bf16", layers=2, width=64, steps=3)
    assert base["model_device"].startswith("cuda") and base["tokens_per_second"] > 0
    out = algorithm_timings("cuda", "bf16", layers=2, width=64, steps=2)
    for algorithm in ("grpo", "rloo", "dpo"):
        assert out[algorithm]["steps_logged"] == 2 and out[algorithm]["finite"], (algorithm, out[algorithm])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_and_cpu_give_the_same_fp32_logits_and_reward_scores(tmp_path):
    """The same checkpoint scores the same on both devices (fp32; TF32 matmuls left off, torch's default)."""
    from transformers import AutoModelForCausalLM

    from rlhf.config import from_dict
    from rlhf.reward.config import RewardModelConfig
    from rlhf.reward.model import load_reward_backbone, load_reward_model, save_reward_model
    from rlhf.tokenizer import encode_batch, load_tokenizer, pad_right
    from tests.toys import make_base

    base = make_base(tmp_path / "base")
    tok = load_tokenizer(base)
    texts = ["好东西", "这个东西很差", "好"]
    ids, mask = pad_right(encode_batch(tok, texts, max_length=32), tok.pad_token_id)
    lm = AutoModelForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        cpu_logits = lm(input_ids=ids, attention_mask=mask).logits
        cuda_logits = lm.to("cuda")(input_ids=ids.cuda(), attention_mask=mask.cuda()).logits.cpu()
    assert torch.allclose(cpu_logits, cuda_logits, atol=1e-4, rtol=1e-4)

    torch.manual_seed(0)
    model, rm_tok = load_reward_backbone(from_dict(RewardModelConfig, {"max_length": 32}, prefix="reward_model"), base)
    save_reward_model(model, rm_tok, tmp_path / "rm", stats={"mean": 0.0, "std": 1.0})
    on_cpu = load_reward_model(tmp_path / "rm", device="cpu").score_texts(texts)
    on_cuda = load_reward_model(tmp_path / "rm", device="cuda").score_texts(texts)
    assert on_cuda.device.type == "cpu"  # scores come back on the CPU whatever the model's device
    assert torch.allclose(on_cpu, on_cuda, atol=1e-4, rtol=1e-4)
