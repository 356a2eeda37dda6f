"""``params.yaml``: one section per step of the pipeline, loaded into typed, validated config objects."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from rlhf.algorithms.config import DPOConfig, GRPOConfig, PolicyConfig, RLOOConfig
from rlhf.compute import ComputeConfig
from rlhf.config import ConfigError, from_dict, param, read_yaml
from rlhf.data.config import DataConfig
from rlhf.evaluation.config import EvalConfig
from rlhf.models.config import BaseConfig
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
    policy: PolicyConfig = param(None, "which algorithms train a policy (ppo by default; grpo, rloo, dpo through TRL)",
                                 factory=PolicyConfig)
    grpo: GRPOConfig = param(None, "GRPO through TRL: groups of completions per prompt, reward, KL beta",
                             factory=GRPOConfig)
    rloo: RLOOConfig = param(None, "RLOO through TRL: leave-one-out baseline over each prompt's completions",
                             factory=RLOOConfig)
    dpo: DPOConfig = param(None, "DPO through TRL: preference pairs from rank lists with prompts or sampled and "
                           "ranked", factory=DPOConfig)
    eval: EvalConfig = param(None, "evaluate_samples stage: sampling, judge, promotion gate", factory=EvalConfig)
    compute: ComputeConfig = param(None, "every stage: device, data-parallel processes and precision of the "
                                   "training stages (base, train_reward_model, ppo)", factory=ComputeConfig)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``; a bad key, type or value raises ``ConfigError`` naming it.

    An unknown top-level key (``ppoo:`` for ``ppo:``) is an error too: no stage reads it, so
    nothing else would ever notice the typo.
    """
    data = read_yaml(path)
    accepted = [f.name for f in fields(Params)]
    unknown = [key for key in data if key not in accepted]
    if unknown:
        raise ConfigError(f"unknown top-level key {unknown[0]!s}; accepted top-level keys: {', '.join(accepted)} "
                          "(each stage's settings go in its section, e.g. ppo.lr)")
    return from_dict(Params, data)


HEADER = ("# Pipeline parameters: `seed`, read by every stage, and one section per step of the pipeline: `data`\n"
          "# read by prepare, `base` by base, `reward_model` by train_reward_model, `ppo` by ppo, `eval` by\n"
          "# evaluate_samples, `compute` (device, processes, precision) by every stage; base and\n"
          "# evaluate_reward_model also read data.published_prompts, ppo eval.judge (dvc.yaml lists them).\n"
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
