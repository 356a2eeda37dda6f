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


def backbone_hidden(lm: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Last hidden states of a causal LM's backbone (no LM head): ``(batch, seq)`` -> ``(batch, seq, hidden)``."""
    out = lm.base_model(input_ids=input_ids, attention_mask=attention_mask,
                        position_ids=position_ids_from_mask(attention_mask), use_cache=False)
    return out.last_hidden_state


def response_logits(lm: PreTrainedModel, query_responses: torch.Tensor, attention_mask: torch.Tensor,
                    prompt_width: int) -> torch.Tensor:
    """Logits that predict each response token, computed for the response positions only.

    ``query_responses`` is ``(batch, prompt_width + gen_len)``; the logits predicting token ``t``
    come from position ``t - 1``, so the last token is never fed (nothing depends on it) and the LM
    head runs on ``gen_len`` positions instead of the whole sequence.
    Returns ``(batch, gen_len, vocab)``.
    """
    hidden = backbone_hidden(lm, query_responses[:, :-1], attention_mask[:, :-1])
    return lm.get_output_embeddings()(hidden[:, prompt_width - 1:])


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
        hidden = backbone_hidden(self.lm, query_responses[:, :-1], attention_mask[:, :-1])
        hidden = hidden[:, prompt_width - 1:]  # (batch, gen_len, hidden)
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
