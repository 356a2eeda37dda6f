"""Evaluation of a tuned policy against its base model: samples, text metrics, promotion gate, report.

Free of Prefect, DVC and MLflow (DESIGN.md §2); the ``evaluate_samples`` stage wires it up.
Modules: ``config`` (the ``eval`` params section), ``samples`` (sampling, KL, fluency,
:func:`~rlhf.evaluation.samples.evaluate_policy`), ``text_metrics``, ``promotion``, ``report``,
``char_ngram`` (a Kneser-Ney character LM) and ``yardstick`` (samples vs real reviews under it).
Import from the modules: the package re-exports nothing.
"""
