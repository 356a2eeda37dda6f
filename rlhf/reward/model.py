"""The reward model: loading its backbone, scoring texts and token ids, saving and loading it.

The RM is ``AutoModelForSequenceClassification(num_labels=1)``. It scores the sequence
``[BOS] + prompt + text + [EOS]``: a GPT-2 at its last non-pad token (``config.pad_token_id``
set), an encoder (BERT, ERNIE) with a linear head on its pooled first token. ``[BOS]`` is
:func:`rlhf.tokenizer.start_ids` (the EOS for a tokenizer without BOS); where the pad token is the
EOS (a tokenizer without one), a causal LM's last non-pad token is the text's last token, in
training and in PPO alike. Batches are always
RIGHT-padded before they reach the model: GPT-2's default position ids are then right, and an
encoder's pooled first token is a real token.

Saved layout (``save_reward_model``)::

    <dir>/config.json, model.safetensors      save_pretrained of the RM
    <dir>/tokenizer.json, ...                 save_pretrained of its tokenizer
    <dir>/reward_stats.json                   {"mean": float, "std": float} of raw scores on dev texts
    <dir>/reward_model_config.json            the RewardModelConfig it was trained with (max_length, ...)
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel,
                          PreTrainedTokenizerBase)

from rlhf.config import ConfigError
from rlhf.models.positions import max_positions
from rlhf.reward.config import RewardModelConfig
from rlhf.tokenizer import ensure_special_tokens, pad_right, start_ids

STATS_FILE = "reward_stats.json"
CONFIG_FILE = "reward_model_config.json"
ADDED_PAD_TOKEN = "[PAD]"


def check_reward_stats(stats: Mapping[str, float], source: str) -> dict[str, float]:
    """``{"mean", "std"}`` as floats, or a ``ValueError`` naming ``source`` (e.g. the stats file).

    The one rule for normalising statistics, checked when a scorer is built or loaded, when it
    normalises and when stats are saved: the mean must be finite and the std a positive finite
    number (a std of 0 would turn every normalised score into inf or nan).
    """
    try:
        mean, std = float(stats["mean"]), float(stats["std"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{source}: got {stats!r}; expected {{\"mean\": float, \"std\": float}}") from None
    if not math.isfinite(mean):
        raise ValueError(f"{source}: mean = {stats['mean']!r}; expected a finite number")
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"{source}: std = {stats['std']!r}; expected a positive finite number (the spread of the "
                         "raw scores on dev texts; retrain the reward model or fix the file)")
    return {"mean": mean, "std": std}


def resolve_backbone(cfg: RewardModelConfig, base_dir: str | Path = "models/base") -> str:
    """The path or id ``cfg.backbone`` stands for; FileNotFoundError when a local one is missing."""
    accepted = ("accepted: 'base' (the base LM written by the `base` stage), a local directory written by "
                "save_pretrained (config.json + weights + tokenizer), or a Hugging Face id already in the local "
                "cache (nothing is downloaded: HF_HUB_OFFLINE=1)")
    if cfg.backbone == "base":
        if not (Path(base_dir) / "config.json").is_file():
            raise FileNotFoundError(f"reward_model.backbone: 'base' means the base LM in {str(base_dir)!r}, which has "
                                    f"no config.json; run the `base` stage first, or {accepted}")
        return str(base_dir)
    name = cfg.backbone
    looks_local = name.startswith((".", "/", "~")) or Path(name).expanduser().exists()
    if looks_local and not (Path(name).expanduser() / "config.json").is_file():
        what = "does not exist" if not Path(name).expanduser().exists() else "has no config.json"
        raise FileNotFoundError(f"reward_model.backbone: {name!r} {what}; {accepted}")
    return str(Path(name).expanduser()) if looks_local else name


def prepare_pad_token(model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Make sure ``tok`` has a pad token and ``model.config.pad_token_id`` matches it.

    A tokenizer without one pads with its EOS (or SEP); one with neither gets a new ``[PAD]``
    token and the model's embeddings are resized to match. The pooling of
    GPT2ForSequenceClassification needs ``config.pad_token_id`` to find the last real token.
    """
    if tok.pad_token is None and tok.eos_token is None and tok.sep_token is None:
        tok.add_special_tokens({"pad_token": ADDED_PAD_TOKEN})
        if len(tok) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tok))
    ensure_special_tokens(tok)
    model.config.pad_token_id = tok.pad_token_id
    text_cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    text_cfg.pad_token_id = tok.pad_token_id
    return tok


def load_reward_backbone(cfg: RewardModelConfig, base_dir: str | Path = "models/base"
                         ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``cfg.backbone`` as ``AutoModelForSequenceClassification(num_labels=1)`` with its tokenizer.

    The score head of a causal LM or encoder checkpoint is new (seed torch before calling).
    Handles tokenizers without a pad token (:func:`prepare_pad_token`); raises
    ``FileNotFoundError`` naming the path and what is accepted when the backbone is missing, and
    ``ConfigError`` when ``cfg.max_length`` exceeds the model's position embeddings.
    """
    name = resolve_backbone(cfg, base_dir)
    try:
        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=1)
    except OSError as e:
        raise FileNotFoundError(f"reward_model.backbone: cannot load {name!r} ({e.__class__.__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else ''}); accepted: 'base', a local "
                                "save_pretrained directory, or a model id in the local Hugging Face cache "
                                "(HF_HUB_OFFLINE=1: nothing is downloaded)") from None
    prepare_pad_token(model, tok)
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False  # no KV cache when scoring whole sequences
    limit = max_positions(model)
    if limit is not None and cfg.max_length > limit:
        raise ConfigError(f"reward_model.max_length: got {cfg.max_length}; expected at most {limit}, the position "
                          f"embeddings of backbone {name!r}")
    return model, tok


def set_dropout(model: torch.nn.Module, p: float) -> int:
    """Set ``p`` on every dropout module of ``model``; returns how many there are."""
    modules = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    for module in modules:
        module.p = p
    return len(modules)


def encode_texts(tok: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int | None
                 ) -> tuple[list[list[int]], list[bool]]:
    """Ids of ``[BOS] + text + [EOS]`` for each text, cut to ``max_length`` keeping BOS and EOS.

    Returns ``(seqs, truncated)``: ``truncated[i]`` says text i did not fit (so callers count it).
    """
    body = tok(list(texts), add_special_tokens=False)["input_ids"] if len(texts) else []
    head = start_ids(tok)  # [BOS], or the EOS for a tokenizer without one (rlhf/tokenizer.py)
    tail = [tok.eos_token_id] if tok.eos_token_id is not None else []
    room = None if max_length is None else max_length - len(head) - len(tail)
    if room is not None and room < 1:
        raise ValueError(f"max_length={max_length} leaves no room for text after BOS/EOS")
    seqs, truncated = [], []
    for ids in body:
        cut = room is not None and len(ids) > room
        seqs.append(head + (ids[:room] if cut else ids) + tail)
        truncated.append(cut)
    return seqs, truncated


def forward_scores(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Raw scores (batch,) of a RIGHT-padded batch (batch, seq); gradients flow when enabled."""
    return model(input_ids=input_ids, attention_mask=attention_mask).logits.squeeze(-1)


def right_align(input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_id: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real tokens to the left, in order, and pad on the right.

    (batch, seq) -> (batch, longest row): a left-padded prompt + completion batch, or one with
    padding in the middle, becomes right-padded; padded slots get ``pad_id``.
    """
    mask = attention_mask.long()
    order = torch.argsort(mask, dim=1, descending=True, stable=True)  # real tokens first, order kept
    ids = input_ids.gather(1, order)
    mask = mask.gather(1, order)
    width = max(int(mask.sum(1).max()), 1)
    ids, mask = ids[:, :width], mask[:, :width]
    return ids.masked_fill(mask == 0, pad_id), mask


class RewardScorer:
    """A trained reward model with its tokenizer and the dev-score statistics PPO normalises with.

    The one reward-model scorer: evaluation, ``rlhf score`` and (through
    :class:`rlhf.ppo.rewards.RewardModelReward`) PPO use it. ``score_texts`` and ``score_ids``
    return RAW scores unless ``normalize=True``, which gives ``(score - stats.mean) / stats.std``.
    ``stats`` must pass :func:`check_reward_stats` (``stats_source`` names where they came from
    in its errors). Sequences longer than ``max_length`` tokens (default: the model's position
    limit) are cut when given as texts and refused when given as ids.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *,
                 stats: Mapping[str, float] | None = None, max_length: int | None = None, batch_size: int = 64,
                 stats_source: str = "RewardScorer stats"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        if getattr(model.config, "pad_token_id", None) is None:  # sequence classifiers pool at the last non-pad
            model.config.pad_token_id = tokenizer.pad_token_id
        self.stats_source = stats_source
        self.stats = check_reward_stats(stats, stats_source) if stats is not None else None
        self.max_length = max_length or max_positions(model)
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> "RewardScorer":
        self.model.to(device)
        return self

    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """:func:`encode_texts` with this scorer's tokenizer and ``max_length``."""
        return encode_texts(self.tokenizer, texts, self.max_length)

    def normalize(self, scores: torch.Tensor) -> torch.Tensor:
        """``(scores - mean) / std`` with the saved dev statistics; ``ValueError`` when they are missing or broken."""
        if self.stats is None:
            raise ValueError(f"RewardScorer: no {STATS_FILE} statistics, so scores cannot be normalised; "
                             "pass stats={'mean': ..., 'std': ...} or load a directory that has the file")
        stats = check_reward_stats(self.stats, self.stats_source)
        return (scores - stats["mean"]) / stats["std"]

    def score_encoded(self, seqs: Sequence[Sequence[int]], *, normalize: bool = False,
                      batch_size: int | None = None) -> torch.Tensor:
        """Scores (n,) float32 on CPU of id sequences, in the given order.

        Sequences are sorted by length and cut into batches of ``batch_size`` so that padding
        stays small; the model runs in inference mode.
        """
        size = batch_size or self.batch_size
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out = torch.empty(len(seqs), dtype=torch.float32)
        was_training = self.model.training
        self.model.eval()
        pad_id = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for start in range(0, len(order), size):
                idx = order[start:start + size]
                ids, mask = pad_right([seqs[i] for i in idx], pad_id)
                scores = forward_scores(self.model, ids.to(self.device), mask.to(self.device))
                out[torch.tensor(idx)] = scores.float().cpu()
        self.model.train(was_training)
        out = out.clone()  # a normal tensor, usable outside inference mode
        return self.normalize(out) if normalize else out

    def score_texts(self, texts: Sequence[str], *, normalize: bool = False,
                    batch_size: int | None = None) -> torch.Tensor:
        """Scores (n,) of ``[BOS] + text + [EOS]`` for each text (truncated to ``max_length``)."""
        seqs, _ = self.encode(texts)
        return self.score_encoded(seqs, normalize=normalize, batch_size=batch_size)

    def score_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                  normalize: bool = False) -> torch.Tensor:
        """Scores (batch,) of token ids (batch, seq) already in the ``[BOS] ... [EOS]`` convention (for PPO).

        Left padding (or padding in the middle) is allowed: rows are right-aligned first, then
        scored ``batch_size`` rows at a time. Returns a tensor on the inputs' device, without
        gradient. Raises ``ValueError`` when a sequence is longer than ``max_length``.
        """
        longest = int(attention_mask.sum(1).max()) if attention_mask.numel() else 0
        if self.max_length is not None and longest > self.max_length:
            raise ValueError(f"reward model: a sequence of {longest} tokens; expected at most "
                             f"max_length={self.max_length}; shorten the prompts or the completions")
        ids, mask = right_align(input_ids, attention_mask, self.tokenizer.pad_token_id)
        was_training = self.model.training
        self.model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, ids.shape[0], self.batch_size):
                chunk_mask = mask[start:start + self.batch_size]
                width = max(int(chunk_mask.sum(1).max()), 1)  # drop columns that are padding in the whole chunk
                out.append(forward_scores(self.model, ids[start:start + self.batch_size, :width].to(self.device),
                                          chunk_mask[:, :width].to(self.device)).float())
        self.model.train(was_training)
        scores = torch.cat(out).to(input_ids.device)
        return self.normalize(scores) if normalize else scores


def reward_stats(scores: torch.Tensor) -> dict[str, float]:
    """``{"mean", "std"}`` (population std) of raw scores (n,), for ``reward_stats.json``."""
    if scores.numel() == 0:
        raise ValueError("reward_stats: no scores")
    return {"mean": float(scores.mean()), "std": float(scores.std(unbiased=False))}


def save_reward_model(model: PreTrainedModel, tok: PreTrainedTokenizerBase, out_dir: str | Path, *,
                      stats: Mapping[str, float], config: Mapping[str, Any] | None = None) -> Path:
    """Write the RM, its tokenizer, ``reward_stats.json`` and (when given) its training config to ``out_dir``."""
    stats = check_reward_stats(stats, f"save_reward_model({str(out_dir)!r}): stats")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    if config is not None:
        (out / CONFIG_FILE).write_text(json.dumps(dict(config), indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    return out


def load_reward_model(path: str | Path, *, max_length: int | None = None, batch_size: int | None = None,
                      device: str | torch.device | None = None) -> RewardScorer:
    """Load a directory written by :func:`save_reward_model` as a :class:`RewardScorer`.

    ``max_length`` and ``batch_size`` default to the saved training config's ``max_length`` and
    ``batch_size_eval`` (else the model's position limit and 64). ``reward_stats.json``, when
    there, must pass :func:`check_reward_stats` (a ``ValueError`` naming the file otherwise).
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"reward model {str(path)!r}: no config.json there; expected a directory written by "
                                "save_reward_model (the train_reward_model stage writes models/reward_model/)")
    model = AutoModelForSequenceClassification.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    prepare_pad_token(model, tok)
    stats = json.loads((path / STATS_FILE).read_text(encoding="utf-8")) if (path / STATS_FILE).is_file() else None
    saved = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")) if (path / CONFIG_FILE).is_file() else {}
    scorer = RewardScorer(model, tok, stats=stats, max_length=max_length or saved.get("max_length"),
                          batch_size=batch_size or saved.get("batch_size_eval", 64),
                          stats_source=str(path / STATS_FILE))
    if device is not None:
        scorer.to(device)
    return scorer
