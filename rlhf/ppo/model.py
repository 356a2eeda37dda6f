"""``PolicyWithValueHead``: a causal LM and a scalar value head on its shared backbone.

One forward of the backbone gives both the next-token logits (policy) and the value of each
state (critic), so PPO pays for one transformer pass per minibatch, not two. The LM is saved
with ``save_pretrained`` exactly as a plain causal LM (``AutoModelForCausalLM.from_pretrained``
loads it alone, e.g. for generation or evaluation); the head goes beside it in
``value_head.safetensors``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.activations import GELUTanh, NewGELUActivation

VALUE_HEAD_FILE = "value_head.safetensors"


def use_fast_gelu(model: nn.Module) -> nn.Module:
    """Swap GPT-2's Python tanh-GELU (``gelu_new``, ~8 kernels) for torch's fused one, in place.

    The same function up to float rounding (~1e-7); faster forward and backward. Only the
    modules change: the config and saved weights do not, so a saved model reloads as before.
    """
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, NewGELUActivation):
                setattr(module, name, GELUTanh())
    return model


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that start at 0 on each row's first real token: ``clamp(cumsum(mask) - 1, min=0)``.

    A left-padded batch needs these for absolute-position models such as GPT-2; ``generate``
    computes the same thing itself. Shape ``(batch, seq)`` -> ``(batch, seq)``.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def backbone_hidden(lm: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    first: int = 0) -> torch.Tensor:
    """Last hidden states of a causal LM's backbone (no LM head) at positions ``first:``:
    ``(batch, seq)`` -> ``(batch, seq - first, hidden)``.

    A GPT-2 (sdpa attention, no active dropout) runs padding-free (:func:`packed_gpt2_hidden`);
    any other model through its own forward.
    """
    if packable(lm):
        return packed_gpt2_hidden(lm.base_model, input_ids, attention_mask, first)
    out = lm.base_model(input_ids=input_ids, attention_mask=attention_mask,
                        position_ids=position_ids_from_mask(attention_mask), use_cache=False)
    return out.last_hidden_state[:, first:]


def packable(lm: PreTrainedModel) -> bool:
    """Whether :func:`packed_gpt2_hidden` computes what ``lm``'s backbone would: a GPT-2 with sdpa attention,
    no cross-attention, and no dropout that is active."""
    model = lm.base_model
    config = lm.config
    dropout = max(config.embd_pdrop, config.attn_pdrop, config.resid_pdrop) if model.training else 0.0
    return (type(model).__name__ == "GPT2Model" and getattr(config, "_attn_implementation", None) == "sdpa"
            and not config.add_cross_attention and dropout == 0.0)


def packed_gpt2_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       first: int = 0) -> torch.Tensor:
    """A GPT-2 backbone's last hidden states over the real tokens only (padding-free), at positions ``first:``:
    ``(batch, seq - first, hidden)``.

    The row-wise layers (embeddings, LayerNorms, the Conv1D matmuls, GELU) run on the ``N`` real
    tokens of the batch packed into one ``(N, hidden)`` matrix, so no work is spent on padding
    (left-padded prompts, responses padded after EOS: ~20% of a PPO rollout's slots); only
    attention sees the padded ``(batch, seq)`` layout, with the causal-and-padding mask the
    model's own forward builds. Positions as :func:`position_ids_from_mask`. Padding positions of
    the result are 0. Per real token the forward equals the model's own (the same ops on the same
    rows: bit for bit in the tests when every block runs on all rows; to round-off when the last
    block runs on fewer, as matmuls of another row count may sum in another order on some CPUs);
    gradients of the weights sum over fewer rows, so they differ from the padded forward's only by
    float summation order. The last block computes only the positions asked for (its keys and values
    still cover every token): PPO asks for the response positions, so the prompt tokens skip the last
    block's attention output, MLP and the final LayerNorm.
    """
    batch, seq = input_ids.shape
    real = attention_mask.bool()
    rows = real.flatten().nonzero().squeeze(1)  # (N,) indices of real tokens in the flattened batch
    positions = position_ids_from_mask(attention_mask).flatten()[rows]
    x = model.wte(input_ids.flatten()[rows]) + model.wpe(positions)  # (N, hidden)
    # causal and padding: query i sees real keys j <= i; every query sees itself (padding rows stay finite)
    steps = torch.arange(seq, device=input_ids.device)
    causal = steps.unsqueeze(1) >= steps.unsqueeze(0)  # (seq, seq)
    mask = (causal & real[:, None, None, :]) | torch.eye(seq, dtype=torch.bool, device=input_ids.device)
    width = x.shape[1]
    last = len(model.h) - 1
    kept = seq - first
    if first:  # the real tokens at positions first: (the last block's rows), as indices into x and into the output
        wanted = real[:, first:].flatten().nonzero().squeeze(1)  # (M,) in the (batch, kept) output
        in_x = torch.full((batch * seq,), -1, dtype=torch.long, device=x.device)
        in_x[rows] = torch.arange(len(rows), device=x.device)
        in_x = in_x.view(batch, seq)[:, first:].flatten()[wanted]  # (M,) rows of x
    for i, block in enumerate(model.h):
        attn = block.attn
        h = block.ln_1(x)
        qkv = attn.c_attn(h)  # (N, 3 hidden)
        qkv = qkv.new_zeros(batch * seq, qkv.shape[1]).index_copy(0, rows, qkv).view(batch, seq, -1)
        q, k, v = (t.view(batch, seq, -1, attn.head_dim).transpose(1, 2) for t in qkv.split(attn.split_size, dim=2))
        if i == last and first:  # only the queries asked for
            out = torch.nn.functional.scaled_dot_product_attention(q[:, :, first:], k, v, attn_mask=mask[:, :, first:],
                                                                   dropout_p=0.0, scale=attn.scaling, is_causal=False)
            out = out.transpose(1, 2).contiguous().view(batch * kept, width).index_select(0, wanted)  # (M, hidden)
            x = x.index_select(0, in_x)
        else:
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0,
                                                                   scale=attn.scaling, is_causal=False)
            out = out.transpose(1, 2).contiguous().view(batch * seq, width).index_select(0, rows)  # (N, hidden)
        x = attn.c_proj(out) + x
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_f(x)
    return x.new_zeros(batch * kept, width).index_copy(0, wanted if first else rows, x).view(batch, kept, width)


def response_logits(lm: PreTrainedModel, query_responses: torch.Tensor, attention_mask: torch.Tensor,
                    prompt_width: int) -> torch.Tensor:
    """Logits that predict each response token, computed for the response positions only.

    ``query_responses`` is ``(batch, prompt_width + gen_len)``; the logits predicting token ``t``
    come from position ``t - 1``, so the last token is never fed (nothing depends on it) and the LM
    head runs on ``gen_len`` positions instead of the whole sequence.
    Returns ``(batch, gen_len, vocab)``.
    """
    hidden = backbone_hidden(lm, query_responses[:, :-1], attention_mask[:, :-1], prompt_width - 1)
    return lm.get_output_embeddings()(hidden)


class PolicyWithValueHead(nn.Module):
    """Causal LM + ``Linear(hidden, 1)`` value head reading the backbone's last hidden state."""

    def __init__(self, lm: PreTrainedModel, value_head: nn.Linear | None = None, *, seed: int = 0):
        super().__init__()
        self.lm = lm
        self.value_head = value_head if value_head is not None else self.fresh_value_head(lm, seed)

    @staticmethod
    def fresh_value_head(lm: PreTrainedModel, seed: int = 0) -> nn.Linear:
        """A new head, weights ~ N(0, 1/(hidden+1)) as in lm-human-preferences, bias 0; seeded."""
        hidden = lm.config.hidden_size
        head = nn.Linear(hidden, 1)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            head.weight.copy_(torch.randn(head.weight.shape, generator=gen) / (hidden + 1) ** 0.5)
            head.bias.zero_()
        return head.to(device=lm.device, dtype=lm.dtype)

    @property
    def config(self):
        return self.lm.config

    @property
    def device(self) -> torch.device:
        return self.lm.device

    def forward(self, query_responses: torch.Tensor, attention_mask: torch.Tensor,
                prompt_width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and values at the positions that predict the response tokens.

        Shapes: ``query_responses``/``attention_mask`` ``(batch, prompt_width + gen_len)`` ->
        logits ``(batch, gen_len, vocab)``, values ``(batch, gen_len)`` where ``values[:, t]`` is
        the value of the state just before response token ``t`` is chosen.
        """
        hidden = backbone_hidden(self.lm, query_responses[:, :-1], attention_mask[:, :-1],
                                 prompt_width - 1)  # (batch, gen_len, hidden)
        logits = self.lm.get_output_embeddings()(hidden)  # (batch, gen_len, vocab)
        values = self.value_head(hidden).squeeze(-1)  # (batch, gen_len)
        return logits, values

    def generate(self, *args, **kwargs):
        """``generate`` of the underlying LM (the value head plays no part in sampling)."""
        return self.lm.generate(*args, **kwargs)

    def save_pretrained(self, directory: str | Path, **kwargs) -> None:
        """Write the LM with ``save_pretrained`` (loadable alone) and the head as ``value_head.safetensors``."""
        directory = Path(directory)
        self.lm.save_pretrained(directory, **kwargs)
        state = {k: v.detach().contiguous().cpu() for k, v in self.value_head.state_dict().items()}
        save_file(state, str(directory / VALUE_HEAD_FILE))

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, seed: int = 0, **kwargs) -> "PolicyWithValueHead":
        """Load the LM from ``directory`` and its value head when saved beside it, else a fresh seeded head."""
        directory = Path(directory)
        lm = AutoModelForCausalLM.from_pretrained(str(directory), **kwargs)
        model = cls(lm, seed=seed)
        head_file = directory / VALUE_HEAD_FILE
        if head_file.exists():
            state = load_file(str(head_file))
            try:
                model.value_head.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"{head_file}: value head does not fit the LM "
                                 f"(hidden size {lm.config.hidden_size}): {e}") from None
        return model
