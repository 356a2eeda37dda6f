"""Evaluation of a tuned policy against its base model: samples, text metrics, promotion gate, report.

Free of Prefect, DVC and MLflow (DESIGN.md §2); the ``evaluate_samples`` stage wires it up.
"""
from rlhf.evaluation.promotion import Decision, decide_promotion
from rlhf.evaluation.samples import (EvalConfig, SampleBatch, evaluate_policy, perplexity, response_logprobs,
                                     sample, select_eval_prompts, sequence_kl)
from rlhf.evaluation.text_metrics import distinct_n, eos_rate, mean_length, repetition_rate, win_rate

__all__ = [
    "Decision", "decide_promotion", "EvalConfig", "SampleBatch", "evaluate_policy", "perplexity",
    "response_logprobs", "sample", "select_eval_prompts", "sequence_kl", "distinct_n", "eos_rate",
    "mean_length", "repetition_rate", "win_rate",
]
