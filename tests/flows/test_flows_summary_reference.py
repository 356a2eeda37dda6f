"""The run summary shows the linear baseline, the robustness set and the fluency yardstick."""
from __future__ import annotations

from rich.console import Console

from flows.summary import headline, render_markdown
from rlhf_cli.render import outcome_rows, print_run_summary

RM = {"pairwise_accuracy": 0.91, "exact_order_accuracy": 0.75, "kendall_tau_b": 0.68,
      "baseline": {"kind": "tfidf_logreg", "pairwise_accuracy": 0.923, "exact_order_accuracy": 0.785},
      "vs_baseline": {"pairwise_accuracy": -0.013},
      "robustness": {"nfkc": {"model": {"pairwise_accuracy": 0.9}, "baseline": {"pairwise_accuracy": 0.92}},
                     "first_chars": {"model": {"pairwise_accuracy": 0.85}, "baseline": {"pairwise_accuracy": 0.88}}}}
EV = {"base": {"judge_score": 0.6}, "tuned": {"judge_score": 0.8}, "kl": 3.0,
      "yardstick": {"order": 4, "base": {"perplexity": 150.0, "real_perplexity": 80.0, "ratio": 1.875},
                    "tuned": {"perplexity": 200.0, "real_perplexity": 82.0, "ratio": 2.439}}}
SUMMARY = {"parent_run_id": "abc", "stages": [
    {"stage": "evaluate_reward_model", "status": "ran", "seconds": 30.0, "metrics": RM},
    {"stage": "evaluate_samples", "status": "ran", "seconds": 60.0, "metrics": EV}]}


def test_headlines_carry_the_reference_figures():
    assert ("linear baseline pairwise acc", "0.923") in headline("evaluate_reward_model", RM)
    assert ("baseline exact order", "0.785") in headline("evaluate_reward_model", RM)
    assert ("yardstick perplexity tuned/real", "2.439") in headline("evaluate_samples", EV)
    md = render_markdown(SUMMARY)
    assert "linear baseline pairwise acc: 0.923" in md and "yardstick perplexity tuned/real: 2.439" in md


def test_outcome_table_rows():
    rows = dict(outcome_rows(SUMMARY))
    assert rows["linear baseline (tfidf_logreg): test pairwise accuracy"] == \
        "0.923 (exact order 0.785); reward model -0.013 over it"
    assert rows["robustness: pairwise accuracy, reward model / baseline"] == "nfkc 0.900/0.920, first_chars 0.850/0.880"
    assert rows["fluency yardstick: char 4-gram perplexity, base -> tuned"] == \
        "150.0 -> 200.0 (real reviews 82.0; ratio 1.88 -> 2.44)"
    console = Console(record=True, width=200)
    print_run_summary(SUMMARY, console, registry_rows=False)
    assert "linear baseline (tfidf_logreg)" in console.export_text()


def test_outcome_table_without_the_new_blocks_is_unchanged():
    old = {"parent_run_id": "x", "stages": [
        {"stage": "evaluate_reward_model", "status": "ran", "seconds": 1.0, "metrics": {"pairwise_accuracy": 0.9}},
        {"stage": "evaluate_samples", "status": "ran", "seconds": 1.0, "metrics": {"base": {}, "tuned": {}}}]}
    labels = [label for label, _ in outcome_rows(old)]
    assert not any("baseline" in label or "yardstick" in label or "robustness" in label for label in labels)
