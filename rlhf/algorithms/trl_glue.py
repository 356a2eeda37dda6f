"""What every TRL trainer needs from this project, in one place (DESIGN.md §9, the TRL traps).

- :func:`training_arguments`: the arguments each TRL config gets from us, set from the device rather
  than TRL's defaults (``bf16=True`` is an error on CPU, ``gradient_checkpointing=True`` only costs
  time on a tiny model), with ``report_to="none"`` (TRL's MLflow integration would open runs of its
  own) and no checkpoints (``save_strategy="no"``: the caller saves the final model);
- :func:`trl_tokenizer` / :func:`trl_prompt`: TRL 1.16 tokenizes a prompt with the tokenizer's
  defaults (``processing_class(text=prompts)``), which for a BERT-style vocabulary means
  ``[CLS] prompt [SEP]`` (an EOS in the prompt) and for others means nothing at all. Our convention is
  ``[BOS] + prompt`` (:func:`rlhf.tokenizer.encode`), so TRL gets a copy of the tokenizer that adds
  no special token, and prompt texts that spell the BOS out; :func:`check_prompt_ids` proves that the
  two give our ids;
- :class:`TRLReward`: PPO's reward function (:mod:`rlhf.ppo.rewards`: the reward model normalised as
  PPO normalises it, or the judge) as TRL's ``reward_funcs`` callable; it rebuilds the
  ``[BOS] + prompt + completion`` ids the reward function expects, so the one scorer scores the ids
  when the vocabularies agree and re-tokenises the texts when they do not;
- :class:`LogCallback`: TRL's logged metrics, step by step, to a caller's ``on_log(step, metrics)``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback

from rlhf.tokenizer import decode, encode, encode_batch, pad_left, start_ids

OnLog = Callable[[int, dict], None]
# TRL / Trainer log lines that are run summaries, not per-step metrics
SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")


def training_arguments(cfg, *, out_dir: str | Path, seed: int, device: str = "cpu", mixed_precision: str = "no",
                       progress: bool = False) -> dict[str, Any]:
    """Keyword arguments shared by ``trl.GRPOConfig`` / ``RLOOConfig`` / ``DPOConfig``.

    ``cfg``: one of :mod:`rlhf.algorithms.config`'s configs (``steps``, ``lr``, ``lr_schedule``,
    ``max_grad_norm``, ``gradient_checkpointing``). ``device``: a resolved device
    (:func:`rlhf.compute.resolve_device`); ``mixed_precision``: ``compute.mixed_precision``.
    """
    import dataclasses

    from transformers import TrainingArguments

    # transformers 5.2x renamed gradient_checkpointing to activation_checkpointing and reads the old name only
    # while the new one is unset, so TRL's default (True) wins unless the new name is given
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return dict(
        output_dir=str(out_dir),  # TRL wants one; nothing is written there (no checkpoints, no reports)
        max_steps=cfg.steps, learning_rate=cfg.lr, lr_scheduler_type=cfg.lr_schedule,
        max_grad_norm=cfg.max_grad_norm, gradient_accumulation_steps=1,
        # TRL 1.16 defaults: bf16=True (refused on CPU without use_cpu) and gradient_checkpointing=True
        use_cpu=device == "cpu", bf16=mixed_precision == "bf16", fp16=mixed_precision == "fp16",
        **{checkpointing: cfg.gradient_checkpointing},
        seed=seed, data_seed=seed,
        report_to="none", logging_steps=1, save_strategy="no", disable_tqdm=not progress,
        dataloader_num_workers=0,
        # dropout makes the policy's log-probs differ from the reference's on the same tokens
        disable_dropout=True,
    )


def bos_text(tok: PreTrainedTokenizerBase) -> str:
    """The text of our start token(s) (:func:`rlhf.tokenizer.start_ids`): ``[CLS]``, or the EOS for a
    tokenizer without BOS."""
    return "".join(tok.convert_ids_to_tokens(start_ids(tok)))


def trl_prompt(tok: PreTrainedTokenizerBase, prompt: str) -> str:
    """The prompt as TRL must see it: ``[BOS] + prompt`` spelled out, tokenized with :func:`trl_tokenizer`."""
    return bos_text(tok) + prompt


def trl_tokenizer(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """A copy of ``tok`` whose ``__call__`` adds no special tokens unless asked (TRL calls it with the defaults).

    Still an instance of ``tok``'s class (TRL checks ``isinstance(..., PreTrainedTokenizerBase)``);
    ``tok`` itself is left as it was and is the one saved with the trained model.
    """
    base = type(tok)
    clone = copy.deepcopy(tok)

    class NoSpecialTokens(base):  # type: ignore[misc, valid-type]
        def __call__(self, *args, add_special_tokens: bool = False, **kwargs):
            return super().__call__(*args, add_special_tokens=add_special_tokens, **kwargs)

    NoSpecialTokens.__name__ = NoSpecialTokens.__qualname__ = f"NoSpecialTokens{base.__name__}"
    clone.__class__ = NoSpecialTokens
    return clone


def check_prompt_ids(tok: PreTrainedTokenizerBase, trl_tok: PreTrainedTokenizerBase, prompts: Sequence[str]) -> None:
    """``ValueError`` unless TRL's tokenization of :func:`trl_prompt` gives :func:`rlhf.tokenizer.encode`'s ids."""
    for prompt in list(prompts)[:8]:
        ours = encode(tok, prompt, eos=False)
        theirs = trl_tok(text=[trl_prompt(tok, prompt)])["input_ids"][0]
        if list(theirs) != ours:
            raise ValueError(f"TRL would tokenize prompt {prompt!r} as {list(theirs)}, not as our [BOS] + prompt "
                             f"{ours}: the tokenizer {type(tok).__name__} does not read {bos_text(tok)!r} as its "
                             f"start token")


class TRLReward:
    """PPO's reward function (``score(ids, mask, texts) -> (batch,)``) as a TRL ``reward_funcs`` callable.

    TRL calls it with ``prompts`` (our :func:`trl_prompt` texts), ``completions`` (TRL's decoding),
    ``completion_ids`` (each completion's ids up to and including its EOS) and every dataset column;
    the dataset's ``text_prompt`` column holds the prompt without the BOS. Texts are decoded with
    :func:`rlhf.tokenizer.decode` (as PPO and the evaluation decode them). ``name`` is how TRL logs
    it (``rewards/<name>/mean``).
    """

    def __init__(self, reward_fn, tok: PreTrainedTokenizerBase, name: str = "reward"):
        self.reward_fn, self.tok = reward_fn, tok
        self.__name__ = name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], completion_ids: Sequence[Sequence[int]],
                 text_prompt: Sequence[str] | None = None, **_: Any) -> list[float]:
        if text_prompt is None:
            raise ValueError("TRLReward: the training dataset needs a 'text_prompt' column (the prompt without BOS)")
        return self.score_ids(text_prompt, completion_ids).tolist()

    def score_ids(self, prompts: Sequence[str], completion_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """Scores ``(batch,)`` of ``prompts[i]`` followed by the token ids ``completion_ids[i]``."""
        heads = encode_batch(self.tok, prompts, eos=False)  # [BOS] + prompt
        rows = [head + [int(t) for t in ids] for head, ids in zip(heads, completion_ids)]
        ids, mask = pad_left(rows, self.tok.pad_token_id)  # (batch, P + G), left-padded
        texts = [p + decode(self.tok, list(c)) for p, c in zip(prompts, completion_ids)]
        return self.reward_fn.score(ids, mask, texts).float().cpu()

    def score_texts(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """Scores ``(batch,)`` of ``prompts[i] + completions[i]`` (completion texts, e.g. from
        :func:`rlhf.sampling.sample_completions`); a completion is scored as having ended with EOS."""
        ids = self.tok(list(completions), add_special_tokens=False)["input_ids"]
        return self.score_ids(prompts, [c + [self.tok.eos_token_id] for c in ids])


class LogCallback(TrainerCallback):
    """Calls ``on_log(step, metrics)`` with every numeric metric TRL logs (``report_to`` is ``"none"``).

    Keeps the per-step rows in ``history`` and the run summary (``train_runtime``, ``train_loss``...)
    in ``summary``; the summary line is not passed to ``on_log``.
    """

    def __init__(self, on_log: OnLog | None = None):
        self.sink = on_log  # not `self.on_log`: that would hide the callback method
        self.history: list[dict] = []
        self.summary: dict[str, float] = {}

    def on_log(self, args, state, control, logs: Mapping[str, Any] | None = None, **kwargs):  # noqa: D102
        numeric = {k: float(v) for k, v in (logs or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if any(k in numeric for k in SUMMARY_KEYS):
            self.summary.update(numeric)
            return
        if not numeric:
            return
        self.history.append({"step": int(state.global_step), **numeric})
        if self.sink is not None:
            self.sink(int(state.global_step), numeric)


def quiet(trainer, progress: bool) -> None:
    """Without ``progress``, drop the callback that prints every log line to stdout (``disable_tqdm`` adds it)."""
    from transformers.trainer_callback import PrinterCallback

    if not progress:
        trainer.remove_callback(PrinterCallback)


def train_and_save(trainer, tok: PreTrainedTokenizerBase, out_dir: str | Path, progress: bool) -> float:
    """Run a TRL trainer, save the trained policy with ``tok`` to ``out_dir``; returns the training seconds."""
    import time

    quiet(trainer, progress)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    save_policy(trainer.accelerator.unwrap_model(trainer.model), tok, out_dir)
    return seconds


def save_policy(model, tok: PreTrainedTokenizerBase, out_dir: str | Path) -> Path:
    """``model.save_pretrained`` + ``tok.save_pretrained`` into ``out_dir`` (created); returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def mean_of(history: Sequence[Mapping[str, float]], key: str, rows: slice) -> float | None:
    """Mean of ``key`` over ``history[rows]`` where present; ``None`` when never logged."""
    values = [h[key] for h in history[rows] if key in h]
    return sum(values) / len(values) if values else None
