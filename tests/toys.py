"""Toy rank lists and a tiny char-tokenizer GPT-2 shared by tests (reward-model training, data parallelism)."""
import random
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

FILLER = "这个东西质量服务物流价格包装颜色味道感觉真的很还是有点"


def toy_lists(n: int, seed: int) -> list[dict]:
    """K=4 lists: 2 texts containing 好 (tied best) above 2 containing 差, in random filler."""
    rng = random.Random(seed)

    def text(mark):
        chars = [rng.choice(FILLER) for _ in range(rng.randint(3, 12))]
        chars.insert(rng.randint(0, len(chars)), mark)
        return "".join(chars)

    return [{"id": f"toy-{seed}-{i}", "prompt": "", "tiers": [[text("好"), text("好")], [text("差"), text("差")]]}
            for i in range(n)]


def make_base(path: Path, n_positions: int = 64) -> Path:
    """A 2-layer 32-wide GPT-2 with a char tokenizer, saved with save_pretrained."""
    from rlhf.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer([FILLER + "好差"])
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tok), n_positions=n_positions,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                               pad_token_id=tok.pad_token_id)).save_pretrained(path)
    tok.save_pretrained(path)
    return path

