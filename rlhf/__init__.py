"""RLHF library: data, tokenizer, models, losses, PPO and metrics.

Free of Prefect, DVC and MLflow imports (DESIGN.md §2): usable from a notebook.
"""
__version__ = "0.1.0"
