"""How long a sequence a model takes: the one rule the sampler and the reward scorer both check."""
from __future__ import annotations


def max_positions(model) -> int | None:
    """Longest sequence, in tokens, a model's position embeddings allow; ``None`` when its config does not say.

    ``model``: a ``PreTrainedModel`` (or anything with a ``config``) or a ``PretrainedConfig``.
    Reads ``n_positions`` (GPT-2) or ``max_position_embeddings`` (BERT, ERNIE, most others).
    """
    cfg = getattr(model, "config", model)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
