"""A tiny char-tokenizer GPT-2 saved in a directory (TRL re-loads the reference from it) and a toy reward."""
import pytest

from tests.toys import make_base

PROMPTS = ["哈", "东西", "这个", "味道"]


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("algorithms") / "base")


@pytest.fixture(scope="session")
def tok(base_dir):
    from rlhf.tokenizer import load_tokenizer

    return load_tokenizer(base_dir)


def mean_toy_reward(model_dir, tok, reward, prompts=PROMPTS, n=16, max_new_tokens=8, seed=1) -> float:
    """Mean toy reward of ``n`` completions per prompt drawn by the project's sampler (``sample_completions``)."""
    from transformers import AutoModelForCausalLM

    from rlhf.algorithms.trl_glue import TRLReward
    from rlhf.sampling import sample_completions

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    drawn = sample_completions(model, tok, prompts, n=n, max_new_tokens=max_new_tokens, seed=seed)
    flat_prompts = [p for p in prompts for _ in range(n)]
    return float(TRLReward(reward, tok).score_texts(flat_prompts, [c for cs in drawn for c in cs]).mean())
