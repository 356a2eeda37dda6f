"""The grpo / rloo / dpo params sections: defaults load, bad values are named with what is accepted."""
import pytest

from rlhf.algorithms.config import DPOConfig, GRPOConfig, RLOOConfig
from rlhf.config import ConfigError, from_dict


def test_defaults_load_and_every_field_is_documented():
    import dataclasses

    for cls, section in ((GRPOConfig, "grpo"), (RLOOConfig, "rloo"), (DPOConfig, "dpo")):
        cfg = from_dict(cls, {}, prefix=section)
        for f in dataclasses.fields(cfg):
            assert f.metadata.get("help"), f"{section}.{f.name} has no help text"
    assert from_dict(GRPOConfig, {}, prefix="grpo").prompts_per_step == 4


@pytest.mark.parametrize("cls, section, mapping, message", [
    (GRPOConfig, "grpo", {"batch_size": 12, "num_generations": 8},
     "grpo.num_generations: got 8; expected a divisor of grpo.batch_size=12"),
    (RLOOConfig, "rloo", {"num_generations": 1}, "rloo.num_generations: got 1; expected a number in [2, inf]"),
    (GRPOConfig, "grpo", {"loss_type": "ppo"}, "grpo.loss_type: got 'ppo'; expected one of"),
    (GRPOConfig, "grpo", {"reward_source": "vibes"}, "grpo.reward_source"),
    (DPOConfig, "dpo", {"pair_source": "human"}, "dpo.pair_source: got 'human'"),
    (DPOConfig, "dpo", {"beta": 0}, "dpo.beta: got 0"),
    (DPOConfig, "dpo", {"learning_rate": 1e-5}, "unknown key dpo.learning_rate"),
])
def test_bad_values_are_named(cls, section, mapping, message):
    with pytest.raises(ConfigError) as err:
        from_dict(cls, mapping, prefix=section)
    assert message in str(err.value)


def test_policy_algorithms_default_to_ppo_and_are_checked():
    from rlhf.algorithms.config import PolicyConfig

    assert from_dict(PolicyConfig, {}, prefix="policy").algorithms == ["ppo"]
    assert from_dict(PolicyConfig, {"algorithms": ["ppo", "grpo", "rloo", "dpo"]}, prefix="policy").algorithms[-1] == "dpo"
    for bad, message in ((["ppo", "a2c"], "policy.algorithms[1]: got 'a2c'"), ([], "policy.algorithms: got []"),
                         (["dpo", "dpo"], "each algorithm at most once")):
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            from_dict(PolicyConfig, {"algorithms": bad}, prefix="policy")
