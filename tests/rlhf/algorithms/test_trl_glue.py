"""The TRL glue: prompts tokenized as [BOS] + prompt, the reward adapter scores through PPO's reward functions,
the training arguments come from the device, not from TRL's defaults."""
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from rlhf.algorithms.config import DPOConfig, GRPOConfig
from rlhf.algorithms.trl_glue import TRLReward, check_prompt_ids, training_arguments, trl_prompt, trl_tokenizer
from rlhf.ppo.rewards import RewardModelReward
from rlhf.reward.model import RewardScorer
from rlhf.tokenizer import build_char_tokenizer, encode


def test_trl_sees_bos_plus_prompt_and_completion_plus_eos(tok):
    trl_tok = trl_tokenizer(tok)
    assert isinstance(trl_tok, type(tok)) and tok(text="哈")["input_ids"][-1] == tok.eos_token_id  # tok unchanged
    assert trl_tok(text=[trl_prompt(tok, "东西")])["input_ids"][0] == encode(tok, "东西", eos=False)
    # DPO tokenizes prompt + chosen, and TRL appends the EOS text to the completion
    assert trl_tok(text=trl_prompt(tok, "哈") + "好的" + tok.eos_token)["input_ids"] == encode(tok, "哈好的")
    check_prompt_ids(tok, trl_tok, ["哈", "东西", ""])


def test_training_arguments_follow_the_device_not_trl_defaults(tmp_path):
    from trl import GRPOConfig as TRLGRPOConfig

    args = TRLGRPOConfig(**training_arguments(GRPOConfig(steps=3), out_dir=tmp_path, seed=7, device="cpu"),
                         per_device_train_batch_size=8, num_generations=8)
    assert (args.bf16, args.fp16, args.use_cpu) == (False, False, True)
    assert args.gradient_checkpointing is False and getattr(args, "activation_checkpointing", False) is False
    assert args.report_to in ([], "none", ["none"]) and args.save_strategy == "no"
    assert (args.seed, args.max_steps, args.learning_rate) == (7, 3, GRPOConfig().lr)
    assert training_arguments(DPOConfig(), out_dir=tmp_path, seed=0, mixed_precision="bf16")["bf16"] is True


def _reward_model(tok):
    torch.manual_seed(0)
    model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tok),
                                                     n_positions=64, num_labels=1, pad_token_id=tok.pad_token_id))
    return RewardScorer(model, tok, max_length=64)


def test_reward_adapter_scores_like_the_scorer_with_shared_and_other_vocabularies(tok):
    prompts, completions = ["哈", "东西"], ["好的", "差"]
    texts = [p + c for p, c in zip(prompts, completions)]
    completion_ids = [tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for c in completions]
    # the RM shares the policy's vocabulary: ids are scored directly
    scorer = _reward_model(tok)
    shared = TRLReward(RewardModelReward(scorer, tok, normalization="none"), tok)
    expected = scorer.score_texts(texts)
    assert torch.allclose(shared.score_ids(prompts, completion_ids), expected, atol=1e-5)
    assert torch.allclose(torch.tensor(shared(prompts=["x", "y"], completions=["?", "?"],
                                              completion_ids=completion_ids, text_prompt=prompts)), expected, atol=1e-5)
    assert torch.allclose(shared.score_texts(prompts, completions), expected, atol=1e-5)
    # another vocabulary: the texts are re-tokenised by the RM's tokenizer
    other_tok = build_char_tokenizer(["的好差哈东西这个"])
    other = _reward_model(other_tok)
    adapter = TRLReward(RewardModelReward(other, tok, normalization="none"), tok)
    assert torch.allclose(adapter.score_ids(prompts, completion_ids), other.score_texts(texts), atol=1e-5)
