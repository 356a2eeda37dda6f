"""Reward functions: RM input format, shared-vocab fast path, normalisation, toy reward."""
import json

import pytest
import torch

from rlhf.ppo.rewards import (CharShareReward, RewardModelScorer, RunningMoments, build_reward_fn,
                              reward_model_inputs)
from rlhf.ppo.config import PPOConfig
from rlhf.tokenizer import encode_batch, pad_right


def test_reward_model_inputs_left_align_and_append_missing_eos():
    eos, pad = 3, 0
    ids = torch.tensor([[0, 2, 5, 6, 3, 0],    # prompt [2,5], response [6, EOS], pad after
                        [2, 5, 5, 6, 7, 8]])   # no EOS: one must be appended
    mask = torch.tensor([[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    out, out_mask = reward_model_inputs(ids, mask, eos, pad)
    assert out.tolist() == [[2, 5, 6, 3, 0, 0, 0], [2, 5, 5, 6, 7, 8, 3]]
    assert out_mask.tolist() == [[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]]


def test_shared_vocab_scores_ids_exactly_like_retokenised_texts(tok, make_rm):
    rm = make_rm()
    scorer = RewardModelScorer(rm, tok, tok, normalization="none")
    assert scorer.shared_vocab
    texts = ["好的很好的", "东西质量太差了"]
    # the PPO layout: left-padded [BOS]+prompt, response, an EOS for the first row only
    qr = torch.tensor([[0, 0, tok.bos_token_id] + tok.convert_tokens_to_ids(list("好的很好的")) + [tok.eos_token_id],
                       [tok.bos_token_id] + tok.convert_tokens_to_ids(list("东西质量太差了")) + [tok.pad_token_id]])
    mask = (qr != tok.pad_token_id).long()
    fast = scorer.score(qr, mask, texts)
    ids, m = pad_right(encode_batch(tok, texts, eos=True), tok.pad_token_id)
    with torch.no_grad():
        expected = rm(input_ids=ids, attention_mask=m).logits[:, 0]
    assert torch.allclose(fast, expected, atol=1e-5)
    scorer.shared_vocab = False  # force the decode-and-retokenise path
    assert torch.allclose(scorer.score(qr, mask, texts), expected, atol=1e-5)


def test_stats_normalisation_from_reward_stats_json(tmp_path, tok, make_rm):
    rm = make_rm()
    rm.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    (tmp_path / "reward_stats.json").write_text(json.dumps({"mean": 1.5, "std": 2.0}))
    cfg = PPOConfig(score_normalization="auto")
    scorer = build_reward_fn(cfg, tok, reward_model_dir=tmp_path)
    assert scorer.normalization == "stats"
    ids, mask = pad_right(encode_batch(tok, ["好的"], eos=True), tok.pad_token_id)
    raw = scorer.raw_scores(ids, mask, ["好的"])
    assert scorer.score(ids, mask, ["好的"]).item() == pytest.approx((raw.item() - 1.5) / 2.0, abs=1e-6)
    (tmp_path / "reward_stats.json").unlink()
    assert build_reward_fn(cfg, tok, reward_model_dir=tmp_path).normalization == "running"
    with pytest.raises(ValueError, match="reward_stats.json"):
        build_reward_fn(PPOConfig(score_normalization="stats"), tok, reward_model_dir=tmp_path)


def test_running_moments_by_hand_and_state_round_trip():
    moments = RunningMoments()
    moments.update(torch.tensor([1.0, 2.0]))
    moments.update(torch.tensor([3.0, 4.0, 10.0]))
    assert moments.mean == pytest.approx(4.0)
    assert moments.std == pytest.approx(torch.tensor([1.0, 2, 3, 4, 10]).std().item())
    other = RunningMoments()
    other.load_state_dict(moments.state_dict())
    assert (other.mean, other.std, other.count) == (moments.mean, moments.std, 5)


def test_char_share_reward():
    reward = CharShareReward("好")
    scores = reward.score(None, None, ["好的好", "哈哈", ""])
    assert scores.tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    with pytest.raises(ValueError):
        CharShareReward("好的")


def test_judge_reward_loads_the_judge_lazily_and_scores_in_batches(monkeypatch):
    import rlhf.judge
    from rlhf.ppo.rewards import JudgeReward

    calls = []

    class StubJudge:  # snownlp's model takes seconds to load; the wiring is what is tested here
        def score(self, texts):
            calls.append(list(texts))
            return [t.count("好") / len(t) for t in texts]

    monkeypatch.setattr(rlhf.judge, "load_judge", lambda cfg: StubJudge())
    reward = build_reward_fn(PPOConfig(reward_source="judge", reward_batch_size=2), None)
    assert isinstance(reward, JudgeReward)
    scores = reward.score(None, None, ["好好", "不好", "差"])
    assert scores.tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert calls == [["好好", "不好"], ["差"]]


def test_batch_ngram_overlap_by_hand():
    from rlhf.ppo.rewards import batch_ngram_overlap

    responses = torch.tensor([[1, 2, 3, 0], [1, 2, 3, 0], [4, 5, 6, 7], [8, 8, 8, 8], [9, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 0, 0]])
    # rows 0 and 1 share both bigrams with 1 of the 4 others; row 2 shares nothing; row 3 repeats
    # (8, 8) twice after using it (0, then 1 and 1); row 4 has no bigram; masked tokens are ignored
    assert batch_ngram_overlap(responses, mask).tolist() == pytest.approx([0.25, 0.25, 0.0, 2 / 3, 0.0])
    same = torch.tensor([[5, 6, 7]] * 3)
    assert batch_ngram_overlap(same, torch.ones_like(same)).tolist() == pytest.approx([1.0] * 3)
    assert batch_ngram_overlap(same, torch.ones_like(same), n=3).tolist() == pytest.approx([1.0] * 3)
    assert batch_ngram_overlap(same[:1], torch.ones_like(same[:1])).tolist() == [0.0]  # nobody to share with
