"""The Hugging Face judge: any text-classification model (``AutoModelForSequenceClassification``)."""
from __future__ import annotations

import torch

from rlhf.config import ConfigError
from rlhf.judge.base import Judge


def resolve_positive_index(id2label: dict, positive_label: str | int, model_name: str = "model") -> int:
    """Index of the positive class in ``id2label`` ({index: name}).

    An int is an index; a str matches a name exactly, else case-insensitively, else as the
    unique case-insensitive prefix of one name (``"positive"`` finds ``"positive (stars 4 and 5)"``).
    Raises ``ConfigError`` listing the model's labels when nothing (or several) match.
    """
    labels = {int(i): str(name) for i, name in id2label.items()}
    listing = ", ".join(f"{i}: {n!r}" for i, n in sorted(labels.items()))
    if isinstance(positive_label, int) and not isinstance(positive_label, bool):
        if positive_label in labels:
            return positive_label
        raise ConfigError(f"judge.positive_label: got index {positive_label}; {model_name} has labels {{{listing}}}")
    want = str(positive_label)
    for match in (lambda n: n == want, lambda n: n.lower() == want.lower(),
                  lambda n: n.lower().startswith(want.lower())):
        hits = [i for i, n in sorted(labels.items()) if match(n)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ConfigError(f"judge.positive_label: {want!r} matches several labels of {model_name} "
                              f"({', '.join(labels[i] for i in hits)}); labels: {{{listing}}}")
    raise ConfigError(f"judge.positive_label: got {want!r}; {model_name} has labels {{{listing}}} "
                      f"(give a name or an index)")


class HFJudge(Judge):
    """A Hugging Face sequence classifier: softmax over labels, P(positive_label); sigmoid for 1 label.

    Texts are tokenized by the model's own tokenizer with its special tokens (``[CLS] text [SEP]``
    for the pipeline's char tokenizer, i.e. BOS + text + EOS), right padded, truncated to
    ``max_length``, batched by length so padding stays small.
    """

    def __init__(self, model, tokenizer, *, positive_label: str | int = "positive", batch_size: int = 64,
                 max_length: int = 128, empty_score: float = 0.5, name: str = "model"):
        super().__init__(empty_score)
        self.model, self.tok = model.eval(), tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        if self.tok.pad_token is None:
            from rlhf.tokenizer import ensure_special_tokens

            ensure_special_tokens(self.tok)
        self.tok.padding_side = "right"  # absolute positions stay 0.. for GPT-2 and BERT alike
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = self.tok.pad_token_id
        self.num_labels = int(model.config.num_labels)
        self.positive_index = 0 if self.num_labels == 1 else resolve_positive_index(
            model.config.id2label, positive_label, name)

    @torch.inference_mode()
    def _score_nonempty(self, texts: list[str]) -> list[float]:
        device = next(self.model.parameters()).device
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [0.0] * len(texts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            enc = self.tok([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                           return_tensors="pt")
            logits = self.model(input_ids=enc["input_ids"].to(device),
                                attention_mask=enc["attention_mask"].to(device)).logits.float()  # (b, labels)
            if self.num_labels == 1:
                probs = torch.sigmoid(logits[:, 0])
            else:
                probs = torch.softmax(logits, dim=-1)[:, self.positive_index]
            for i, p in zip(idx, probs.tolist()):
                out[i] = p
        return out
