"""Sample from the base and the tuned policy on the same prompts and seeds, and compare them.

The evaluation stage's library (DESIGN.md §3 ``evaluate_samples``): the judge (a scorer the
policy never trained against), the reward model when given, KL of the policy to the base
model (the PPO reference), diversity, length, EOS rate and fluency (perplexity under the base).

Conventions (``rlhf/tokenizer.py``): a prompt is ``[BOS] + chars`` with no EOS, left padded;
a response is what the model generates after it, masked after its first EOS (the EOS itself
counts: it is the model's decision to stop). A forward on a left-padded batch gets
``position_ids = cumsum(attention_mask) - 1``, as ``generate()`` uses.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from rlhf.evaluation.config import EvalConfig
from rlhf.evaluation.text_metrics import distinct_n, eos_rate, mean_length, repetition_rate, win_rate
from rlhf.judge.base import Judge
from rlhf.sampling import decode_responses, sample_responses
from rlhf.seed import seed_everything


@dataclass
class SampleBatch:
    """Samples of one model; sample ``i`` answers ``prompts[i]``. Shapes: n samples, Lq prompt, T new tokens."""

    prompts: list[str]             # (n,)
    query_ids: torch.Tensor        # (n, Lq) [BOS] + prompt, left padded
    query_mask: torch.Tensor       # (n, Lq)
    response_ids: torch.Tensor     # (n, T) generated ids; pad after the first EOS
    response_mask: torch.Tensor    # (n, T) 1 up to and including the first EOS
    eos: torch.Tensor              # (n,) bool: the sample ended with EOS within T tokens
    completions: list[str]         # (n,) decoded responses without special tokens
    temperature: float = 1.0       # the sampling temperature (log-probs are taken at it)

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def texts(self) -> list[str]:
        """prompt + completion: what the judge and the reward model read."""
        return [p + c for p, c in zip(self.prompts, self.completions)]


@contextlib.contextmanager
def _eval_mode(*models):
    """Dropout off while evaluating; each model's previous mode restored afterwards."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def sample(model, tok, prompts: Sequence[str], n_per_prompt: int, cfg: EvalConfig, seed: int,
           progress: bool = False) -> SampleBatch:
    """Draw ``n_per_prompt`` samples per prompt (prompt-major order: sample i answers prompt i // n_per_prompt).

    The one sampler (:func:`rlhf.sampling.sample_responses`, the sampler PPO trains with): batches
    of ``cfg.batch_size`` left-padded ``[BOS] + prompt``, KV cache, softmax(logits / temperature)
    with ``cfg.top_k`` / ``cfg.top_p``, ``cfg.max_new_tokens`` new tokens. Reseeds with ``seed``
    first, so two models sampled with the same seed see the same random stream; the result is
    the same on every run on CPU.
    """
    prompts = [p for p in prompts for _ in range(n_per_prompt)]
    if not prompts:
        raise ValueError("sample: no prompts")
    seed_everything(seed)
    out = sample_responses(model, tok, prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                           top_k=cfg.top_k, top_p=cfg.top_p, batch_size=cfg.batch_size, progress=progress)
    completions = decode_responses(tok, out.response_ids, out.response_mask)  # the EOS is no text
    return SampleBatch(prompts, out.prompt_ids, out.prompt_mask, out.response_ids, out.response_mask.long(),
                       out.ended, completions, cfg.temperature)


@torch.inference_mode()
def response_logprobs(model, batch: SampleBatch, temperature: float = 1.0, batch_size: int = 64) -> torch.Tensor:
    """(n, T) log p(response token | prompt, earlier tokens) under ``model`` at ``temperature``; 0 where masked.

    One forward per ``batch_size`` sequences over ``[prompt | response]``, positions from the
    attention mask (left padding), logits only at the T positions that predict the response.
    """
    T = batch.response_ids.shape[1]
    out = torch.zeros(batch.response_ids.shape, dtype=torch.float32)
    device = _device(model)
    with _eval_mode(model):
        for start in range(0, len(batch), batch_size):
            sl = slice(start, start + batch_size)
            qmask = batch.query_mask[sl]
            keep = int(qmask.sum(-1).max())
            ids = torch.cat([batch.query_ids[sl, -keep:], batch.response_ids[sl]], dim=1).to(device)
            mask = torch.cat([qmask[:, -keep:], batch.response_mask[sl]], dim=1).to(device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                           logits_to_keep=T + 1).logits[:, :-1]  # (b, T, vocab): predicts response tokens
            logp = F.log_softmax(logits.float() / temperature, dim=-1)
            token_logp = logp.gather(-1, ids[:, -T:, None]).squeeze(-1)  # (b, T)
            out[sl] = (token_logp * mask[:, -T:]).cpu()
    return out


def sequence_kl(policy, ref, batch: SampleBatch, batch_size: int = 64) -> torch.Tensor:
    """(n,) KL estimate per sample, nats: sum over response tokens of log p_policy - log p_ref.

    On the policy's own samples this is an unbiased estimate of KL(policy || ref) over whole
    responses (the k1 estimator PPO penalises); both at the sampling temperature.
    """
    policy_lp = response_logprobs(policy, batch, batch.temperature, batch_size)
    ref_lp = response_logprobs(ref, batch, batch.temperature, batch_size)
    return ((policy_lp - ref_lp) * batch.response_mask).sum(-1)


def response_nll(model, batch: SampleBatch, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """((n,) summed NLL of each response's tokens in nats, (n,) token counts) under ``model`` at temperature 1."""
    lp = response_logprobs(model, batch, 1.0, batch_size)
    return -(lp * batch.response_mask).sum(-1), batch.response_mask.sum(-1).float()


def select_eval_prompts(records: Sequence[Mapping[str, Any]], n_heldout: int) -> list[dict]:
    """The prompts to evaluate: every published prompt, then the first ``n_heldout`` held-out prompts
    of the test split, in file order (``data/prepared/prompts.jsonl`` records), duplicates dropped."""
    published, heldout, seen = [], [], set()
    for rec in records:
        prompt = rec["prompt"]
        if prompt in seen:
            continue
        if rec.get("source") == "published":
            published.append({"prompt": prompt, "group": "published"})
            seen.add(prompt)
        elif rec.get("source") == "heldout" and rec.get("split") == "test" and len(heldout) < n_heldout:
            heldout.append({"prompt": prompt, "group": "heldout"})
            seen.add(prompt)
    return published + heldout


def _prompt_groups(prompts: Sequence[str | Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    texts, groups = [], []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            texts.append(p)
            groups.append("all")
        elif isinstance(p, Mapping) and isinstance(p.get("prompt"), str):
            texts.append(p["prompt"])
            groups.append(str(p.get("group") or p.get("source") or "all"))
        else:
            raise TypeError(f"prompts[{i}] = {p!r}; expected a str or a mapping with a 'prompt' string")
    return texts, groups


def _text_metrics(batch: SampleBatch, judge_scores: list[float], threshold: float,
                  rm_scores: list[float] | None, nll: torch.Tensor, counts: torch.Tensor) -> dict[str, float]:
    out = {"judge_score": sum(judge_scores) / len(judge_scores),
           "judge_positive_rate": sum(s > threshold for s in judge_scores) / len(judge_scores)}
    if rm_scores is not None:
        out["rm_score"] = sum(rm_scores) / len(rm_scores)
    out.update(distinct_1=distinct_n(batch.completions, 1), distinct_2=distinct_n(batch.completions, 2),
               repetition_rate=repetition_rate(batch.completions, 3), mean_length=mean_length(batch.completions),
               eos_rate=eos_rate(batch.eos.tolist()),
               perplexity=float(torch.exp(nll.sum() / counts.sum().clamp(min=1))))
    return out


def _subset(batch: SampleBatch, idx: list[int]) -> SampleBatch:
    t = torch.tensor(idx, dtype=torch.long)
    return SampleBatch([batch.prompts[i] for i in idx], batch.query_ids[t], batch.query_mask[t],
                       batch.response_ids[t], batch.response_mask[t], batch.eos[t],
                       [batch.completions[i] for i in idx], batch.temperature)


def eval_key(prompts: Sequence[str], cfg: EvalConfig, seed: int) -> str:
    """A short hash of what makes two evaluations comparable: prompts, seed, sampling and judge settings."""
    what = {"prompts": list(prompts), "seed": seed, "samples_per_prompt": cfg.samples_per_prompt,
            "max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "top_k": cfg.top_k,
            "top_p": cfg.top_p, "judge": asdict(cfg.judge)}
    return hashlib.sha256(json.dumps(what, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def evaluate_policy(base, policy, tok, prompts: Sequence[str | Mapping[str, Any]], cfg: EvalConfig, judge: Judge,
                    reward_scorer=None, seed: int = 0, progress: bool = False,
                    base_cache: dict | None = None) -> dict[str, Any]:
    """Base model vs tuned policy on the same prompts and seeds.

    ``base_cache``: a dict kept by a caller that evaluates several policies against the same
    ``base``, judge and reward scorer; the base's samples and their scores are computed once (per
    prompts, settings and seed) and taken from it afterwards, with the same numbers.

    ``prompts``: strings, or mappings with ``prompt`` and ``group`` (or ``source``), e.g. from
    :func:`select_eval_prompts`. ``reward_scorer``: anything with ``score_texts(texts) -> tensor``.
    The judge and the RM read prompt + completion; text metrics read the completion alone.

    Returns plain data::

        {"base": {judge_score, judge_positive_rate, [rm_score], distinct_1, distinct_2,
                  repetition_rate, mean_length (chars), eos_rate, perplexity (under base)},
         "tuned": {same keys},
         "kl": mean KL(policy || base) nats/sample, "win_rate": tuned over base by the judge (ties half),
         "groups": {group: {"n_samples", "base", "tuned", "kl", "win_rate"}},
         "rows": [{"prompt", "group", "base", "tuned", "base_judge", "tuned_judge",
                   ["base_rm", "tuned_rm"], "kl"}],   # one per sample pair
         "n_samples", "n_prompts", "seed", "eval_key"}
    """
    texts, groups = _prompt_groups(prompts)
    n = cfg.samples_per_prompt
    groups = [g for g in groups for _ in range(n)]
    def scored(model) -> dict[str, Any]:
        batch = sample(model, tok, texts, n, cfg, seed, progress)
        rm = None if reward_scorer is None else \
            [float(s) for s in reward_scorer.score_texts(batch.texts).reshape(-1).tolist()]
        return {"batch": batch, "judge": judge.score(batch.texts), "rm": rm,
                "nll": response_nll(base, batch, cfg.batch_size)}

    key = (eval_key(texts, cfg, seed), reward_scorer is not None)
    if base_cache is not None and key in base_cache:
        base_part = base_cache[key]
    else:
        base_part = scored(base)
        if base_cache is not None:
            base_cache[key] = base_part
    parts = {"base": base_part, "tuned": scored(policy)}
    batches = {k: part["batch"] for k, part in parts.items()}
    judge_scores = {k: part["judge"] for k, part in parts.items()}
    rm_scores = None if reward_scorer is None else {k: part["rm"] for k, part in parts.items()}
    kl = sequence_kl(policy, base, batches["tuned"], cfg.batch_size)  # (n_samples,)
    nll = {k: part["nll"] for k, part in parts.items()}

    def summarise(idx: list[int]) -> dict[str, Any]:
        t = torch.tensor(idx, dtype=torch.long)
        out = {}
        for k, b in batches.items():
            out[k] = _text_metrics(_subset(b, idx), [judge_scores[k][i] for i in idx], cfg.positive_threshold,
                                   None if rm_scores is None else [rm_scores[k][i] for i in idx],
                                   nll[k][0][t], nll[k][1][t])
        out["kl"] = float(kl[t].mean())
        out["win_rate"] = win_rate([judge_scores["tuned"][i] for i in idx], [judge_scores["base"][i] for i in idx])
        return out

    result = summarise(list(range(len(groups))))
    result["groups"] = {g: {"n_samples": groups.count(g), **summarise([i for i, x in enumerate(groups) if x == g])}
                        for g in dict.fromkeys(groups)}
    rows = []
    for i, g in enumerate(groups):
        row = {"prompt": batches["base"].prompts[i], "group": g,
               "base": batches["base"].completions[i], "tuned": batches["tuned"].completions[i],
               "base_judge": judge_scores["base"][i], "tuned_judge": judge_scores["tuned"][i]}
        if rm_scores is not None:
            row.update(base_rm=rm_scores["base"][i], tuned_rm=rm_scores["tuned"][i])
        row["kl"] = float(kl[i])
        rows.append(row)
    result.update(rows=rows, n_samples=len(groups), n_prompts=len(texts), seed=seed,
                  eval_key=eval_key(texts, cfg, seed))
    return result
