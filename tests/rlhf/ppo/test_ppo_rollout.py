"""Rollout: EOS masking, flags, and log-probs that agree with a plain forward.

The sampler itself is tested in tests/rlhf/test_sampling.py.
"""
import pytest
import torch

from rlhf.ppo.core import logprobs_from_logits
from rlhf.ppo.model import PolicyWithValueHead
from rlhf.ppo.rollout import decode_completions, rollout
from rlhf.sampling import sample_completions


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
    """Exactly zero when both log-probs come from the same forward; round-off when the policy's come from decoding."""
    policy = PolicyWithValueHead(make_lm())
    batch = rollout(policy, make_lm(), tok, ["好的", "哈哈嗯"], max_new_tokens=5, score_while_decoding=False)
    assert torch.equal(batch.logprobs, batch.ref_logprobs)
    batch = rollout(policy, make_lm(), tok, ["好的", "哈哈嗯"], max_new_tokens=5)
    assert torch.allclose(batch.logprobs, batch.ref_logprobs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"temperature": 0.7, "top_k": 5, "top_p": 0.9}])
def test_old_logprobs_and_values_from_decoding_equal_a_full_forward(tok, make_lm, kw):
    """The decoding loop's log-probs and values (the default) are the policy forward's up to float round-off:
    the same samples, left padding and rows that end early included; top-k / top-p enter neither."""
    lm = make_lm()
    with torch.no_grad():  # some rows stop early
        lm.lm_head.weight[tok.eos_token_id] += 0.35 * lm.transformer.wte.weight.std() * 8
    policy, ref = PolicyWithValueHead(lm), make_lm(seed=1)
    prompts = ["好的很好", "哈", "东西", "这部电影很"] * 4

    def run(**more):
        torch.manual_seed(0)
        out = rollout(policy, ref, tok, prompts, max_new_tokens=6, **kw, **more)
        return out, torch.rand(1)

    (decoded, rng_a), (forward, rng_b) = run(), run(score_while_decoding=False)
    assert torch.equal(decoded.query_responses, forward.query_responses) and torch.equal(rng_a, rng_b)
    if not kw:  # (under top-k 5 the EOS is rarely among the candidates)
        assert decoded.ended.any() and not decoded.ended.all()
    assert decoded.logprobs.shape == forward.logprobs.shape and decoded.values.shape == forward.values.shape
    assert torch.allclose(decoded.logprobs, forward.logprobs, rtol=0, atol=1e-5)
    assert torch.allclose(decoded.values, forward.values, rtol=0, atol=1e-5)
    masked = decoded.response_mask == 0
    assert (decoded.logprobs[masked] == 0).all() and (decoded.values[masked] == 0).all()
    assert torch.equal(decoded.ref_logprobs, forward.ref_logprobs)


def test_rollout_scores_with_a_forward_when_generate_samples(tok, make_lm, monkeypatch):
    """A policy that the GPT-2 loop does not decode (``generate`` samples): old log-probs and values from a forward."""
    import rlhf.sampling as sampling

    policy, ref, prompts = PolicyWithValueHead(make_lm()), make_lm(seed=1), ["好的", "哈", "东西"]
    torch.manual_seed(0)
    expected = rollout(policy, ref, tok, prompts, max_new_tokens=5, score_while_decoding=False)
    monkeypatch.setattr(sampling, "decodable", lambda lm: False)
    torch.manual_seed(0)
    batch = rollout(policy, ref, tok, prompts, max_new_tokens=5)
    assert torch.equal(batch.query_responses, expected.query_responses)
    assert torch.equal(batch.logprobs, expected.logprobs) and torch.equal(batch.values, expected.values)


def test_rollout_samples_what_the_shared_sampler_samples(tok, make_lm):
    """PPO's rollout and every other user (evaluation, the app, `rlhf generate`) draw the same completions."""
    lm, ref, prompts = make_lm(), make_lm(seed=1), ["好的", "哈", "东西"]
    policy = PolicyWithValueHead(lm)  # before seeding: a fresh value head draws from the global RNG
    torch.manual_seed(5)
    batch = rollout(policy, ref, tok, prompts, max_new_tokens=5)
    shared = sample_completions(lm, tok, prompts, n=1, max_new_tokens=5, seed=5, batch_size=len(prompts))
    assert decode_completions(tok, batch) == [row[0] for row in shared]


def test_rollout_refuses_prompts_that_do_not_fit_the_policy(tok, make_lm):
    policy = PolicyWithValueHead(make_lm())  # 64 positions
    with pytest.raises(ValueError, match=r"prompt of 61 tokens \+ max_new_tokens=6 exceeds the model's 64 positions"):
        rollout(policy, make_lm(), tok, ["好" * 60], max_new_tokens=6)
