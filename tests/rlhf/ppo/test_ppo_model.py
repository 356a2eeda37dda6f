"""PolicyWithValueHead: one forward for logits and values; save/load round trip."""
import torch
from transformers import AutoModelForCausalLM

from rlhf.ppo.model import VALUE_HEAD_FILE, PolicyWithValueHead, position_ids_from_mask, response_logits
from rlhf.sampling import encode_prompts


def test_position_ids_from_left_padded_mask():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]


def test_forward_matches_full_lm_forward_on_response_positions(tok, make_lm):
    policy = PolicyWithValueHead(make_lm())
    ids, mask = encode_prompts(tok, ["好的很好", "哈"])  # left-padded, width 5
    ids = torch.cat([ids, torch.tensor([[7, 8, 9], [9, 8, 7]])], dim=1)
    mask = torch.cat([mask, torch.ones(2, 3, dtype=torch.long)], dim=1)
    logits, values = policy(ids, mask, prompt_width=5)
    assert logits.shape == (2, 3, len(tok)) and values.shape == (2, 3)
    # row 1 alone, unpadded: the left padding must not change anything (position ids)
    alone = policy.lm(input_ids=ids[1:, 3:], attention_mask=mask[1:, 3:]).logits[:, 1:4]
    assert torch.allclose(logits[1:], alone, atol=1e-5)
    assert torch.allclose(response_logits(policy.lm, ids, mask, 5), logits)


def test_save_pretrained_round_trip_and_lm_loads_alone(tmp_path, tok, make_lm):
    policy = PolicyWithValueHead(make_lm(), seed=3)
    with torch.no_grad():
        policy.value_head.bias.fill_(0.25)
    policy.save_pretrained(tmp_path)
    assert (tmp_path / VALUE_HEAD_FILE).exists()

    lm_alone = AutoModelForCausalLM.from_pretrained(tmp_path)  # the LM is a plain causal LM
    ids = torch.tensor([[2, 5, 6, 7]])
    assert torch.equal(lm_alone(input_ids=ids).logits, policy.lm(input_ids=ids).logits)

    loaded = PolicyWithValueHead.from_pretrained(tmp_path, seed=99)
    assert torch.equal(loaded.value_head.weight, policy.value_head.weight)
    assert loaded.value_head.bias.item() == 0.25


def test_fresh_value_head_when_absent_is_seeded(tmp_path, make_lm):
    make_lm().save_pretrained(tmp_path)
    a = PolicyWithValueHead.from_pretrained(tmp_path, seed=1)
    b = PolicyWithValueHead.from_pretrained(tmp_path, seed=1)
    c = PolicyWithValueHead.from_pretrained(tmp_path, seed=2)
    assert torch.equal(a.value_head.weight, b.value_head.weight)
    assert not torch.equal(a.value_head.weight, c.value_head.weight)
    assert a.value_head.bias.abs().sum().item() == 0.0


def test_packed_backbone_equals_the_models_own_forward_bit_for_bit(tok, make_lm):
    """Padding-free GPT-2 forward: every real token's hidden state is the model's own, bit for bit; padding is 0."""
    from rlhf.ppo.model import backbone_hidden, packable, packed_gpt2_hidden

    lm = make_lm()
    assert packable(lm)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(tok), (6, 11), generator=gen)
    mask = torch.ones(6, 11, dtype=torch.long)
    for row, (left, end) in enumerate([(0, 11), (3, 11), (5, 9), (1, 6), (0, 10), (4, 8)]):
        mask[row, :left], mask[row, end:] = 0, 0  # left-padded prompt, padding after EOS
    ids = ids.masked_fill(mask == 0, tok.pad_token_id)
    with torch.no_grad():
        own = lm.base_model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                            use_cache=False).last_hidden_state
        packed = packed_gpt2_hidden(lm.base_model, ids, mask)
    real = mask.bool()
    assert torch.equal(packed[real], own[real])
    assert packed[~real].abs().sum() == 0
    assert torch.equal(backbone_hidden(lm, ids, mask), packed)
    with torch.no_grad():  # only the positions 4: (the last block skips the others' rows)
        tail = packed_gpt2_hidden(lm.base_model, ids, mask, 4)
    assert tail.shape == (6, 7, 32)
    assert torch.equal(tail[real[:, 4:]], own[:, 4:][real[:, 4:]])
    assert tail[~real[:, 4:]].abs().sum() == 0


def test_packed_backbone_gradients_match_the_padded_forwards(tok, make_lm):
    policy, other = PolicyWithValueHead(make_lm()), PolicyWithValueHead(make_lm())
    ids, mask = encode_prompts(tok, ["好的很好", "哈", "这部电影"])
    ids = torch.cat([ids, torch.tensor([[7, 8, 9], [9, 8, tok.pad_token_id], [7, 7, 7]])], dim=1)
    mask = torch.cat([mask, torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]])], dim=1)
    import rlhf.ppo.model as model_module
    logits, values = policy(ids, mask, prompt_width=5)
    response_mask = mask[:, 5:].float()
    ((logits.logsumexp(-1) + values) * response_mask).sum().backward()
    original = model_module.packable
    model_module.packable = lambda lm: False  # the model's own (padded) forward
    try:
        logits2, values2 = other(ids, mask, prompt_width=5)
    finally:
        model_module.packable = original
    ((logits2.logsumexp(-1) + values2) * response_mask).sum().backward()
    real = response_mask.bool()
    # the last block runs on fewer rows (the response positions) than the padded forward's: whether a matmul of
    # another row count sums in the same order depends on the CPU's kernels (bit for bit on some machines,
    # within 1 ulp on others: 6e-8 in a logit, 2.4e-7 in a value on an AVX-512 machine, 2026-12-04)
    assert torch.allclose(logits[real], logits2[real], rtol=1e-6, atol=1e-6)
    assert torch.allclose(values[real], values2[real], rtol=1e-6, atol=1e-6)
    for (name, p), q in zip(policy.named_parameters(), other.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6), name  # summation order only


def test_models_that_are_not_packable_use_their_own_forward(tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlhf.ppo.model import packable

    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tok), n_positions=16)
    config._attn_implementation = "eager"
    assert not packable(GPT2LMHeadModel(config))
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tok), n_positions=16, resid_pdrop=0.1)
    assert not packable(GPT2LMHeadModel(config).train())
