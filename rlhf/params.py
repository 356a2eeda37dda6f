"""``params.yaml``: one section per stage, loaded into typed, validated config objects."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlhf.config import from_dict, param, read_yaml
from rlhf.data.config import DataConfig
from rlhf.evaluation.samples import EvalConfig
from rlhf.models.base_lm import BaseConfig
from rlhf.ppo.config import PPOConfig
from rlhf.reward.config import RewardModelConfig


@dataclass
class Params:
    """The whole ``params.yaml``. ``seed`` seeds every stage; each section configures one stage."""

    seed: int = param(0, "seed of every random choice in every stage", min=0)
    data: DataConfig = param(None, "prepare stage: corpus, cleaning, splits, rank lists, prompts", factory=DataConfig)
    base: BaseConfig = param(None, "base stage: bootstrapped or loaded causal LM", factory=BaseConfig)
    reward_model: RewardModelConfig = param(None, "train_reward_model stage: backbone, rank loss, training",
                                            factory=RewardModelConfig)
    ppo: PPOConfig = param(None, "ppo stage: rollouts, KL penalty, losses, checkpoints", factory=PPOConfig)
    eval: EvalConfig = param(None, "evaluate_samples stage: sampling, judge, promotion gate", factory=EvalConfig)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``; a bad key, type or value raises ``ConfigError`` naming it."""
    return from_dict(Params, read_yaml(path))


HEADER = ("# Pipeline parameters: one section per stage (the stage reads the section named after it).\n"
          "# Generated from the typed configs (rlhf/*/config.py): `python -m rlhf.params > params.yaml`.\n"
          "# Every key is validated on load; `python -m rlhf.params --complete FILE` adds keys a newer version has.\n\n")


def default_params_yaml() -> str:
    """``params.yaml`` with every default and its help text (``python -m rlhf.params > params.yaml``)."""
    from rlhf.config import render_yaml

    return HEADER + render_yaml(Params())


def complete_params_yaml(path: str | Path) -> str:
    """``path``'s values with every key the configs have (new keys at their defaults), as YAML.

    Keeps the file's leading comment block; validates like :func:`load_params`.
    """
    from rlhf.config import render_yaml

    text = Path(path).read_text(encoding="utf-8")
    return _leading_comments(text) + render_yaml(load_params(path))


def _leading_comments(text: str) -> str:
    """The file's header: its comment lines up to the first blank line (none when there is no blank line)."""
    lines = []
    for line in text.splitlines():
        if not line.strip():
            return "".join(lines) + "\n"
        if not line.startswith("#"):
            return ""
        lines.append(line + "\n")
    return ""


def main(argv: list[str] | None = None) -> int:
    """``python -m rlhf.params`` prints the defaults; ``--complete FILE`` rewrites FILE with every key."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rlhf.params", description=main.__doc__)
    parser.add_argument("--complete", metavar="FILE", help="add missing keys (at their defaults) to FILE in place")
    args = parser.parse_args(argv)
    if args.complete:
        Path(args.complete).write_text(complete_params_yaml(args.complete), encoding="utf-8")
    else:
        print(default_params_yaml(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
