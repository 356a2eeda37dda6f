"""Rollout: EOS masking, flags, and log-probs that agree with a plain forward."""
import torch

from rlhf.ppo.core import logprobs_from_logits
from rlhf.ppo.generate import sample_completions
from rlhf.ppo.model import PolicyWithValueHead
from rlhf.ppo.rollout import decode_completions, encode_prompts, response_mask_after_eos, rollout


def test_mask_keeps_first_eos_and_drops_everything_after():
    eos = 3
    responses = torch.tensor([[5, 3, 6, 3], [5, 6, 7, 8], [3, 5, 5, 5]])
    mask, ended = response_mask_after_eos(responses, eos)
    assert mask.tolist() == [[True, True, False, False], [True, True, True, True], [True, False, False, False]]
    assert ended.tolist() == [True, False, True]


def test_prompts_start_with_bos_and_are_left_padded(tok):
    ids, mask = encode_prompts(tok, ["好的", "哈"])
    assert ids[0].tolist() == [tok.bos_token_id] + tok.convert_tokens_to_ids(["好", "的"])
    assert ids[1, 0].item() == tok.pad_token_id and ids[1, 1].item() == tok.bos_token_id
    assert mask.tolist() == [[1, 1, 1], [0, 1, 1]]


def test_rollout_masks_after_eos_and_matches_plain_forward(tok, make_lm):
    lm = make_lm()
    with torch.no_grad():  # make EOS likely so that some rows stop early and some do not
        lm.lm_head.weight[tok.eos_token_id] += 0.35 * lm.transformer.wte.weight.std() * 8
    policy, ref = PolicyWithValueHead(lm), make_lm(seed=1)
    torch.manual_seed(0)
    prompts = ["好的很好", "哈", "东西", "这部电影很"] * 4
    batch = rollout(policy, ref, tok, prompts, max_new_tokens=6)
    resp, mask = batch.responses, batch.response_mask
    assert batch.ended.any() and not batch.ended.all(), "test needs both ended and unfinished rows"
    for row in range(len(prompts)):
        n = int(mask[row].sum())
        eos_at = (resp[row] == tok.eos_token_id).nonzero()
        if batch.ended[row]:
            assert resp[row, n - 1] == tok.eos_token_id and eos_at[0].item() == n - 1  # EOS kept, it is an action
        else:
            assert n == resp.shape[1] and len(eos_at) == 0  # no EOS: kept whole, flagged
        assert (resp[row, n:] == tok.pad_token_id).all()
        assert (batch.logprobs[row, n:] == 0).all() and (batch.values[row, n:] == 0).all()
    assert batch.attention_mask[:, batch.prompt_width:].tolist() == mask.long().tolist()

    # old log-probs agree with an unbatched, unpadded forward of the same sequence
    row = 1  # the short prompt: most left padding
    real = batch.attention_mask[row].bool()
    seq = batch.query_responses[row, real].unsqueeze(0)
    n_prompt = int(batch.attention_mask[row, :batch.prompt_width].sum())
    logits = lm(input_ids=seq).logits[:, n_prompt - 1:-1]
    expected = logprobs_from_logits(logits, seq[:, n_prompt:])[0]
    n = int(mask[row].sum())
    assert torch.allclose(batch.logprobs[row, :n], expected, atol=1e-5)
    ref_logits = ref(input_ids=seq).logits[:, n_prompt - 1:-1]
    assert torch.allclose(batch.ref_logprobs[row, :n], logprobs_from_logits(ref_logits, seq[:, n_prompt:])[0],
                          atol=1e-5)
    completions = decode_completions(tok, batch)
    assert all("[SEP]" not in c and "[PAD]" not in c for c in completions)


def test_rollout_of_identical_policy_and_reference_has_zero_kl(tok, make_lm):
    policy = PolicyWithValueHead(make_lm())
    batch = rollout(policy, make_lm(), tok, ["好的", "哈哈嗯"], max_new_tokens=5)
    assert torch.equal(batch.logprobs, batch.ref_logprobs)


def test_sample_completions_is_seeded_and_shaped(tok, make_lm):
    lm = make_lm()
    state = torch.get_rng_state()
    a = sample_completions(lm, tok, ["好的", "哈"], n=3, max_new_tokens=5, seed=7)
    b = sample_completions(lm, tok, ["好的", "哈"], n=3, max_new_tokens=5, seed=7)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is untouched
    assert a == b and len(a) == 2 and all(len(x) == 3 for x in a)
    assert a != sample_completions(lm, tok, ["好的", "哈"], n=3, max_new_tokens=5, seed=8)
    assert all(len(c) <= 5 for row in a for c in row)


def test_inverse_cdf_sampler_draws_from_the_softmax():
    from rlhf.ppo.rollout import InverseCDFSampler, sampling_processors

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
