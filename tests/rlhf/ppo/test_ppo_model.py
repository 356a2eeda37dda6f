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
