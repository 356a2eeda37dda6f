"""The one sampler: prompt encoding, EOS masks, the inverse-CDF draw, seeding, batching, the position limit."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf.sampling import (InverseCDFSampler, decode_responses, encode_prompts, response_mask_after_eos, sample,
                           sample_completions, sample_responses, sampling_processors)
from rlhf.tokenizer import build_char_tokenizer

PROMPTS = ["好的", "哈", "这部电影很"]


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer(["好的很好的不错呀", "哈哈嗯这是一个测试句子", "东西质量太差了", "这部电影很好看"])


@pytest.fixture(scope="module")
def lm(tok):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tok), n_positions=32,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id)).eval()
    with torch.no_grad():  # make EOS likely so that some rows stop early and some do not
        model.lm_head.weight[tok.eos_token_id] += 0.35 * model.transformer.wte.weight.std() * 8
    return model


def test_mask_keeps_first_eos_and_drops_everything_after():
    eos = 3
    responses = torch.tensor([[5, 3, 6, 3], [5, 6, 7, 8], [3, 5, 5, 5]])
    mask, ended = response_mask_after_eos(responses, eos)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, False, False], [True, True, True, True], [True, False, False, False]]
    assert ended.tolist() == [True, False, True]


def test_prompts_start_with_bos_and_are_left_padded(tok):
    ids, mask = encode_prompts(tok, ["好的", "哈"])
    assert ids[0].tolist() == [tok.bos_token_id] + tok.convert_tokens_to_ids(["好", "的"])
    assert ids[1, 0].item() == tok.pad_token_id and ids[1, 1].item() == tok.bos_token_id
    assert mask.tolist() == [[1, 1, 1], [0, 1, 1]]


def test_inverse_cdf_sampler_draws_from_the_softmax():
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    scores = probs.log().expand(20000, 4).clone()
    torch.manual_seed(0)
    out = InverseCDFSampler()(None, scores)
    assert torch.isinf(out).sum(-1).eq(3).all()  # exactly one finite score per row: greedy picks it
    counts = torch.bincount(out.argmax(-1), minlength=4).float() / 20000
    assert counts[3] == 0  # a zero-probability token is never drawn
    assert torch.allclose(counts[:3], probs[:3], atol=0.015), counts
    # with top_k=1 only the most likely token survives
    top1 = sampling_processors(top_k=1)(None, scores[:100].clone())
    assert (top1.argmax(-1) == 0).all()


def test_sample_completions_is_seeded_and_leaves_the_callers_rng_alone(tok, lm):
    state = torch.get_rng_state()
    a = sample_completions(lm, tok, PROMPTS, n=3, max_new_tokens=5, seed=7)
    b = sample_completions(lm, tok, PROMPTS, n=3, max_new_tokens=5, seed=7)
    assert torch.equal(state, torch.get_rng_state())
    assert a == b and len(a) == 3 and all(len(x) == 3 for x in a)
    assert a != sample_completions(lm, tok, PROMPTS, n=3, max_new_tokens=5, seed=8)
    assert all(len(c) <= 5 and "[SEP]" not in c and "[PAD]" not in c for row in a for c in row)
    assert sample_completions(lm, tok, [], n=2) == []
    with pytest.raises(ValueError, match="n must be >= 1"):
        sample_completions(lm, tok, PROMPTS, n=0)


def test_sample_responses_masks_after_eos_and_does_not_depend_on_batching(tok, lm):
    torch.manual_seed(3)
    whole = sample_responses(lm, tok, PROMPTS * 4, max_new_tokens=6, batch_size=12)
    ids, mask, ended = whole.response_ids, whole.response_mask, whole.ended
    assert ids.shape == mask.shape == (12, 6) and mask.dtype == torch.bool
    assert ended.any() and not ended.all(), "the test needs rows that ended and rows that did not"
    for row in range(12):
        n = int(mask[row].sum())
        assert mask[row, :n].all() and (ids[row, n:] == tok.pad_token_id).all()
        assert bool(ended[row]) == (ids[row, n - 1] == tok.eos_token_id) and (n == 6 or ended[row])
        assert (ids[row, :n - 1] != tok.eos_token_id).all()
    # columns that are padding in every row are dropped: they change nothing, not even the position limit
    prompt_ids, prompt_mask = encode_prompts(tok, PROMPTS)
    extra = 40 - prompt_ids.shape[1]  # wider than the model's 32 positions
    wide_ids = torch.cat([torch.full((3, extra), tok.pad_token_id), prompt_ids], dim=1)
    wide_mask = torch.cat([torch.zeros(3, extra, dtype=torch.long), prompt_mask], dim=1)
    kw = dict(max_new_tokens=6, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(4)
    tight = sample(lm, prompt_ids, prompt_mask, **kw)
    torch.manual_seed(4)
    assert torch.equal(sample(lm, wide_ids, wide_mask, **kw), tight)
    texts = decode_responses(tok, ids, mask)
    assert all("[SEP]" not in t for t in texts)


def test_prompt_too_long_for_the_model_is_a_clear_error(tok, lm):
    ids, mask = encode_prompts(tok, ["好" * 20])  # 21 tokens with BOS; the model has 32 positions
    with pytest.raises(ValueError, match=r"prompt of 21 tokens \+ max_new_tokens=12 exceeds the model's 32 positions"):
        sample(lm, ids, mask, max_new_tokens=12, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    assert sample(lm, ids, mask, max_new_tokens=11, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id).shape[1] <= 11  # exactly at the limit is fine
    with pytest.raises(ValueError, match="positions"):
        sample_completions(lm, tok, ["好" * 40], max_new_tokens=1)


@pytest.mark.parametrize("prompts, kw", [
    (PROMPTS, {}),  # left padding, some rows stop early
    (["这部电影很"] * 3, {}),  # no padding: generate's causal masks without a mask tensor
    (PROMPTS * 2, {"temperature": 0.7, "top_k": 5, "top_p": 0.9}),
    (PROMPTS, {"max_new_tokens": 1}),
])
def test_gpt2_decode_samples_what_generate_samples_bit_for_bit(tok, lm, prompts, kw):
    """The GPT-2 decoding loop draws the same tokens as ``generate`` and leaves torch's RNG in the same state."""
    import rlhf.sampling as sampling

    assert sampling.decodable(lm)
    kw = {"max_new_tokens": 12, **kw}
    ids, mask = encode_prompts(tok, prompts)

    def draw():
        torch.manual_seed(3)
        out = sample(lm, ids, mask, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **kw)
        return out, torch.rand(1)

    fast, fast_rng = draw()
    original = sampling.decodable
    sampling.decodable = lambda model: False  # generate
    try:
        slow, slow_rng = draw()
    finally:
        sampling.decodable = original
    assert fast.shape == slow.shape and torch.equal(fast, slow)
    assert torch.equal(fast_rng, slow_rng)


def test_gpt2_decode_records_the_hidden_state_and_scores_each_token_was_drawn_from(tok, lm):
    """``record`` sees, per sampled token, the final hidden state and the raw scores at the position that predicted
    it (a full forward's, up to round-off), and changes no token."""
    ids, mask = encode_prompts(tok, PROMPTS)
    kw = {"max_new_tokens": 8, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
          "temperature": 0.7, "top_k": 5}
    torch.manual_seed(3)
    plain = sample(lm, ids, mask, **kw)
    calls = []
    torch.manual_seed(3)
    out = sample(lm, ids, mask, record=lambda hidden, scores, tokens: calls.append((hidden, scores, tokens)), **kw)
    assert torch.equal(out, plain) and len(calls) == out.shape[1]
    assert all(torch.equal(tokens, out[:, t]) for t, (_, _, tokens) in enumerate(calls))
    full = torch.cat([ids, out], dim=1)
    attention = torch.cat([mask, torch.ones_like(out)], dim=1)
    with torch.no_grad():
        res = lm(input_ids=full, attention_mask=attention, position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
                 output_hidden_states=True)
    width = ids.shape[1]
    for t, (hidden, scores, _) in enumerate(calls):  # only rows still running matter; all rows are real here
        running = (out[:, :t] != tok.eos_token_id).all(1)
        assert torch.allclose(hidden[running], res.hidden_states[-1][running, width + t - 1], atol=1e-5)
        assert scores.dtype == torch.float32
        assert torch.allclose(scores[running], res.logits[running, width + t - 1], atol=1e-5)
