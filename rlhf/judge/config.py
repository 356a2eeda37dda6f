"""The judge's settings: ``params.yaml`` ``eval.judge``."""
from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import ConfigError, param


@dataclass
class JudgeConfig:
    """The judge's settings (``params.yaml``: ``eval.judge``; a PPO run may reuse them for ``reward_source: judge``)."""

    backend: str = param("snownlp", "'snownlp' (the snownlp package's sentiment model) or 'hf' "
                         "(a Hugging Face text-classification model)", choices=("snownlp", "hf"))
    model: str = param("", "hf backend: model id (in the local cache) or local path of an "
                      "AutoModelForSequenceClassification with its tokenizer")
    positive_label: str | int = param("positive", "hf backend: the positive class, as an id2label name "
                                      "(exact, else case-insensitive, else a unique case-insensitive "
                                      "prefix) or an index; ignored for a single-logit model (sigmoid)")
    batch_size: int = param(64, "hf backend: texts per forward pass", min=1)
    max_length: int = param(128, "hf backend: tokens per text, longer texts are truncated at the end", min=2)
    empty_score: float = param(0.5, "score of an empty or whitespace-only text (not sent to the model)",
                               min=0.0, max=1.0)

    def validate(self, prefix: str = "judge") -> None:
        if self.backend == "hf" and not self.model:
            raise ConfigError(f"{prefix}.model: got {self.model!r}; backend 'hf' needs a model id or path")
