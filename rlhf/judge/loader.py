"""Building the judge a ``JudgeConfig`` describes (the backends are imported only when chosen)."""
from __future__ import annotations

import torch

from rlhf.config import ConfigError
from rlhf.judge.base import Judge
from rlhf.judge.config import JudgeConfig


def load_judge(cfg: JudgeConfig, device: str | torch.device | None = None) -> Judge:
    """The judge ``cfg`` describes; ``device`` places an hf model (default: CPU)."""
    if cfg.backend == "snownlp":
        from rlhf.judge.snownlp_judge import SnowNLPJudge

        return SnowNLPJudge(cfg.empty_score)
    if cfg.backend == "hf":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from rlhf.judge.hf_judge import HFJudge

        try:
            tok = AutoTokenizer.from_pretrained(cfg.model)
            model = AutoModelForSequenceClassification.from_pretrained(cfg.model)
        except OSError as e:
            raise ConfigError(f"judge.model: cannot load {cfg.model!r} as a text-classification model with its "
                              f"tokenizer (a local path, or an id in the local cache): {e}") from None
        if device is not None:
            model.to(device)
        return HFJudge(model, tok, positive_label=cfg.positive_label, batch_size=cfg.batch_size,
                       max_length=cfg.max_length, empty_score=cfg.empty_score, name=repr(cfg.model))
    raise ConfigError(f"judge.backend: got {cfg.backend!r}; expected one of 'snownlp', 'hf'")
