"""Reward functions: RM input format, shared-vocab fast path and re-tokenised path, normalisation, toy reward."""
import json

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from rlhf.ppo.config import PPOConfig
from rlhf.ppo.rewards import RewardModelReward, RunningMoments, build_reward_fn, reward_model_inputs
from rlhf.reward.model import RewardScorer
from rlhf.tokenizer import build_char_tokenizer, encode_batch, pad_right

from tests.rlhf.ppo.toy_rewards import CharShareReward


def save_rm(directory, tok, make_rm, stats=None):
    rm = make_rm()
    rm.save_pretrained(directory)
    tok.save_pretrained(directory)
    if stats is not None:
        (directory / "reward_stats.json").write_text(json.dumps(stats))
    return rm


def ppo_batch(tok, prompt_completions):
    """The PPO layout of ``(prompt, completion, ended)`` rows: left-padded [BOS]+prompt, completion, EOS if ended."""
    seqs = [[tok.bos_token_id] + tok.convert_tokens_to_ids(list(p + c)) + ([tok.eos_token_id] if ended else [])
            for p, c, ended in prompt_completions]
    width = max(len(s) for s in seqs) + 1  # one column of padding after every row
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    for i, s in enumerate(seqs):
        ids[i, width - 1 - len(s):width - 1] = torch.tensor(s)
    return ids, (ids != tok.pad_token_id).long()


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
    scorer = RewardModelReward(RewardScorer(rm, tok), tok, normalization="none")
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
    save_rm(tmp_path, tok, make_rm, {"mean": 1.5, "std": 2.0})
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


@pytest.mark.parametrize("std", [0.0, -1.0, float("nan"), float("inf")])
def test_a_stats_file_without_a_positive_finite_std_is_refused_naming_the_file(tmp_path, tok, make_rm, std):
    save_rm(tmp_path, tok, make_rm, {"mean": 0.0, "std": std})
    for normalization in ("auto", "stats", "running", "none"):  # a broken file is an error whatever the mode
        with pytest.raises(ValueError, match=r"reward_stats\.json: std = .*expected a positive finite number"):
            build_reward_fn(PPOConfig(score_normalization=normalization), tok, reward_model_dir=tmp_path)


def test_running_normalisation_by_hand_and_state_round_trip(tmp_path, tok, make_rm):
    save_rm(tmp_path, tok, make_rm)  # no reward_stats.json: auto means running
    reward = build_reward_fn(PPOConfig(score_normalization="auto"), tok, reward_model_dir=tmp_path)
    assert reward.normalization == "running"
    rows = [("好的", "很好", True), ("东西", "质量太差了", True), ("哈", "哈哈嗯", False)]
    ids, mask = ppo_batch(tok, rows)
    texts = [p + c for p, c, _ in rows]
    raw = reward.raw_scores(ids, mask, texts)
    first = reward.score(ids, mask, texts)
    assert first.tolist() == pytest.approx(((raw - raw.mean()) / raw.std()).tolist(), abs=1e-5)
    second = reward.score(ids, mask, texts)  # the same scores again: the running std over 6 shrinks
    both = torch.cat([raw, raw])
    assert second.tolist() == pytest.approx(((raw - both.mean()) / both.std()).tolist(), abs=1e-5)
    resumed = build_reward_fn(PPOConfig(score_normalization="running"), tok, reward_model_dir=tmp_path)
    resumed.load_state_dict(reward.state_dict())
    assert torch.allclose(resumed.score(ids, mask, texts), reward.score(ids, mask, texts), atol=1e-6)


def test_a_reward_model_with_another_vocabulary_scores_the_retokenised_texts(tmp_path, tok, make_lm):
    rm_tok = build_char_tokenizer(["好的很好的不错呀", "质量太差了", "其他的字完全不同"])  # another vocabulary
    torch.manual_seed(0)
    rm = GPT2ForSequenceClassification(GPT2Config(
        n_layer=1, n_embd=16, n_head=2, vocab_size=len(rm_tok), n_positions=32, num_labels=1,
        bos_token_id=rm_tok.bos_token_id, eos_token_id=rm_tok.eos_token_id, pad_token_id=rm_tok.pad_token_id))
    rm.save_pretrained(tmp_path)
    rm_tok.save_pretrained(tmp_path)
    reward = build_reward_fn(PPOConfig(score_normalization="none"), tok, reward_model_dir=tmp_path)
    assert not reward.shared_vocab and reward.scorer.max_length == 32
    rows = [("好的", "很好", True), ("东西", "质量太差了", False)]
    ids, mask = ppo_batch(tok, rows)  # the policy's ids: meaningless to this reward model
    texts = [p + c for p, c, _ in rows]
    rm_ids, rm_mask = pad_right(encode_batch(rm_tok, texts, eos=True), rm_tok.pad_token_id)
    with torch.no_grad():
        expected = rm.eval()(input_ids=rm_ids, attention_mask=rm_mask).logits[:, 0]
    assert torch.allclose(reward.score(ids, mask, texts), expected, atol=1e-5)


def test_sequences_longer_than_the_reward_models_positions_are_a_clear_error(tok, make_rm):
    reward = RewardModelReward(RewardScorer(make_rm(), tok), tok, normalization="none")  # 64 positions
    ids, mask = ppo_batch(tok, [("好" * 40, "的" * 30, False)])  # BOS + 70 + the EOS appended = 72
    with pytest.raises(ValueError, match=r"a sequence of 72 tokens; expected at most max_length=64"):
        reward.score(ids, mask, ["好" * 40 + "的" * 30])


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
    import rlhf.judge.loader
    from rlhf.ppo.rewards import JudgeReward

    calls = []

    class StubJudge:  # snownlp's model takes seconds to load; the wiring is what is tested here
        def score(self, texts):
            calls.append(list(texts))
            return [t.count("好") / len(t) for t in texts]

    monkeypatch.setattr(rlhf.judge.loader, "load_judge", lambda cfg: StubJudge())
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
