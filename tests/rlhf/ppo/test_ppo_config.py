"""PPOConfig validation: bad values are named with what would be accepted."""
import pytest

from rlhf.config import ConfigError, from_dict
from rlhf.ppo.config import PPOConfig


def test_defaults_are_the_measured_setup():
    """The defaults chosen by the sweeps in the README's "Tuning PPO" (beta 0.1, lr 5e-5, entropy 0.02, 50 iterations)."""
    cfg = from_dict(PPOConfig, {}, prefix="ppo")
    assert (cfg.init_kl_coef, cfg.kl_target, cfg.kl_horizon, cfg.kl_control) == (0.1, 6.0, 10000.0, "adaptive")
    assert (cfg.entropy_coef, cfg.iterations) == (0.02, 50)
    assert (cfg.gamma, cfg.lam, cfg.cliprange, cfg.cliprange_value, cfg.vf_coef) == (1.0, 0.95, 0.2, 0.2, 0.1)
    assert (cfg.ppo_epochs, cfg.max_new_tokens, cfg.top_k, cfg.top_p, cfg.temperature) == (2, 16, 0, 1.0, 1.0)
    assert cfg.lr == 5e-5
    assert cfg.minibatch_size == 16


@pytest.mark.parametrize("mapping, message", [
    ({"batch_size": 10, "num_minibatches": 4}, "ppo.num_minibatches: got 4; expected a divisor of ppo.batch_size=10"),
    ({"kl_estimator": "k2"}, "ppo.kl_estimator: got 'k2'; expected one of 'k1'"),
    ({"reward_source": "vibes"}, "ppo.reward_source"),
    ({"top_p": 0.0}, "ppo.top_p: got 0.0; expected a number in (0.0, 1.0]"),
    ({"cliprange": "wide"}, "ppo.cliprange: got 'wide'"),
    ({"learning_rate": 1e-5}, "unknown key ppo.learning_rate"),
])
def test_bad_values_are_named(mapping, message):
    with pytest.raises(ConfigError) as err:
        from_dict(PPOConfig, mapping, prefix="ppo")
    assert message in str(err.value)
