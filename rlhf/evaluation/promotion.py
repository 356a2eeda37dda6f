"""The promotion gate: does a newly tuned policy (the challenger) replace the champion?

A pure decision over two :func:`rlhf.evaluation.samples.evaluate_policy` results. Rules:

1. the challenger's mean KL to the base (reference) model is finite and at most ``max_kl``
   nats per sample, always (a policy that drifted far has likely hacked the reward);
2. its distinct-2 is at least ``min_distinct_2_ratio`` times the base model's on the same
   prompts (a policy repeating one phrase has collapsed), always;
3. there is no champion, or the challenger's judge mean is strictly above the champion's on the
   same prompts and seeds (equal ``eval_key``s, when both results carry one).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Decision:
    """The verdict and the figures it rests on (``champion_judge`` is None without a champion)."""

    promote: bool
    reason: str
    challenger_judge: float
    champion_judge: float | None
    kl: float
    max_kl: float
    distinct_2: float
    distinct_2_floor: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _figure(result: Mapping[str, Any], *path: str) -> float:
    """``result["tuned"]["judge_score"]``, or a flat ``result["tuned/judge_score"]`` / ``["tuned.judge_score"]``
    (``rlhf.config.flatten``) form, e.g. metrics read back from a tracker; NaN when absent."""
    node: Any = result
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            node = result.get("/".join(path), result.get(".".join(path), math.nan))
            break
        node = node[key]
    try:
        return float(node)
    except (TypeError, ValueError):
        return math.nan


def decide_promotion(challenger: Mapping[str, Any], champion: Mapping[str, Any] | None, max_kl: float,
                     min_distinct_2_ratio: float = 0.5) -> Decision:
    """Promote ``challenger`` over ``champion`` (None: there is none) or not; the reason lists every failed rule.

    Figures read: ``kl``, ``tuned.judge_score``, ``tuned.distinct_2``, ``base.distinct_2``, and
    ``eval_key`` when present. A missing or non-finite figure fails its rule.
    """
    judge = _figure(challenger, "tuned", "judge_score")
    kl = _figure(challenger, "kl")
    distinct_2 = _figure(challenger, "tuned", "distinct_2")
    floor = min_distinct_2_ratio * _figure(challenger, "base", "distinct_2")
    champion_judge = None if champion is None else _figure(champion, "tuned", "judge_score")

    failures = []
    if not (math.isfinite(kl) and kl <= max_kl):
        failures.append(f"KL to the base model {kl:.3f} nats/sample exceeds max_kl {max_kl:g}")
    if not (math.isfinite(distinct_2) and math.isfinite(floor) and distinct_2 >= floor):
        failures.append(f"distinct-2 {distinct_2:.3f} is below the floor {floor:.3f} "
                        f"({min_distinct_2_ratio:g} x the base model's)")
    if not math.isfinite(judge):
        failures.append(f"challenger judge mean is {judge}")
    if champion is not None:
        keys = challenger.get("eval_key"), champion.get("eval_key")
        if None not in keys and keys[0] != keys[1]:
            failures.append(f"champion was evaluated on other prompts/seeds/settings (eval_key {keys[1]} vs "
                            f"{keys[0]}); re-evaluate it with the challenger's")
        elif not (judge > champion_judge):  # also False for NaN
            failures.append(f"judge mean {judge:.4f} does not beat the champion's {champion_judge:.4f}")

    if failures:
        reason = "not promoted: " + "; ".join(failures)
    elif champion is None:
        reason = f"promoted: no champion yet; KL {kl:.3f} <= {max_kl:g}, distinct-2 {distinct_2:.3f} >= {floor:.3f}"
    else:
        reason = (f"promoted: judge mean {judge:.4f} > champion's {champion_judge:.4f}; KL {kl:.3f} <= {max_kl:g}, "
                  f"distinct-2 {distinct_2:.3f} >= {floor:.3f}")
    return Decision(not failures, reason, judge, champion_judge, kl, float(max_kl), distinct_2, floor)
