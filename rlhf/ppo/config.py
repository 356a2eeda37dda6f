"""``PPOConfig``: every knob of the PPO stage, with its meaning, default and accepted range.

Loaded from the ``ppo`` section of ``params.yaml`` with ``rlhf.config.from_dict(PPOConfig, ...)``.
The defaults target the default pipeline (a bootstrapped 4-layer, 256-wide char-level GPT-2, a
reward model on the same backbone, ~500 train prompts, ~5 minutes on 2 CPU cores). They follow
the published setup (trl 0.1-era PPO) in adaptive KL control (target 6, horizon 10000), GAE
gamma 1 / lambda 0.95, clip 0.2 for policy and value, value coefficient 0.1 and 16 new tokens
sampled at temperature 1 with neither top-k nor top-p; they depart from it in the initial KL
coefficient (0.1, not 0.2), the PPO epochs per rollout (2, not 4), an entropy bonus (0.02) and a
novelty penalty (1.0); the README's "Tuning PPO" has the sweeps behind them.
"""
from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import ConfigError, param


@dataclass
class PPOConfig:
    """``params.yaml`` section ``ppo``: rollouts, rewards, KL control, losses, guards, checkpoints."""

    # --- schedule
    iterations: int = param(50, "PPO iterations; each is one rollout followed by `ppo_epochs` passes over it", min=1)
    batch_size: int = param(64, "episodes (prompt + sampled completion) per rollout", min=1)
    num_minibatches: int = param(4, "minibatches each rollout is split into per PPO epoch (one optimiser step each)",
                                 min=1)
    ppo_epochs: int = param(2, "passes over each rollout, reshuffled every pass", min=1)
    lr: float = param(5e-5, "AdamW learning rate of policy and value head", min=0.0, min_exclusive=True)
    lr_schedule: str = param("constant", "'constant', or 'linear' decay to 0 over `iterations`",
                             choices=("constant", "linear"))
    adam_eps: float = param(1e-8, "AdamW epsilon", min=0.0, min_exclusive=True)
    weight_decay: float = param(0.0, "AdamW decoupled weight decay", min=0.0)
    max_grad_norm: float = param(1.0, "clip the global gradient norm to this before each step; 0 = no clipping",
                                 min=0.0)

    # --- sampling (rollout)
    max_new_tokens: int = param(16, "tokens sampled per completion (the response length)", min=1)
    temperature: float = param(1.0, "sampling temperature; log-probs in the loss use the same one", min=0.0,
                               min_exclusive=True)
    top_k: int = param(0, "sample from the k most likely tokens only; 0 = whole vocabulary (PPO's usual choice)", min=0)
    top_p: float = param(1.0, "nucleus sampling mass; 1.0 = off", min=0.0, max=1.0, min_exclusive=True)

    # --- KL penalty to the reference model
    kl_control: str = param("adaptive", "'adaptive' (Ziegler et al.) or 'fixed' KL coefficient",
                            choices=("adaptive", "fixed"))
    init_kl_coef: float = param(0.1, "initial (or fixed) KL coefficient beta of the per-token penalty", min=0.0)
    kl_target: float = param(6.0, "adaptive control: target KL per sample, in nats", min=0.0, min_exclusive=True)
    kl_horizon: float = param(10000.0, "adaptive control: horizon in episodes (larger = slower adaptation)",
                              min=0.0, min_exclusive=True)
    kl_estimator: str = param("k1", "per-token KL estimator: k1 = log(pi/ref), k3/low_var = exp(-d)-1+d, "
                              "abs = |d|, mse = d^2/2", choices=("k1", "k3", "low_var", "abs", "mse"))

    # --- advantages and losses
    gamma: float = param(1.0, "discount factor of GAE", min=0.0, max=1.0)
    lam: float = param(0.95, "GAE lambda (bias/variance trade-off)", min=0.0, max=1.0)
    cliprange: float = param(0.2, "PPO ratio clip epsilon of the policy loss", min=0.0, min_exclusive=True)
    cliprange_value: float = param(0.2, "clip of the value prediction around its rollout value", min=0.0,
                                   min_exclusive=True)
    vf_coef: float = param(0.1, "weight of the value loss in the total loss", min=0.0)
    entropy_coef: float = param(0.02, "weight of the entropy bonus (subtracted from the loss); 0 = none", min=0.0)
    whiten_advantages: bool = param(True, "standardise advantages over the rollout's real tokens")
    whiten_rewards: bool = param(False, "rescale per-token rewards to unit variance (mean kept) before GAE")

    # --- scores (the reward signal before the KL penalty)
    reward_source: str = param("reward_model", "'reward_model' (models/reward_model) or 'judge' (the evaluation "
                               "judge; only when you mean to optimise it)", choices=("reward_model", "judge"))
    score_normalization: str = param("auto", "reward-model scores: 'stats' = reward_stats.json mean/std, 'running' "
                                     "= running mean/std of scores seen so far, 'auto' = stats when the file "
                                     "exists else running, 'none' = raw", choices=("auto", "stats", "running", "none"))
    score_clip: float = param(0.0, "clip scores to [-c, c] after normalisation; 0 = off", min=0.0)
    missing_eos_penalty: float = param(0.0, "subtracted from the score of a completion that did not end with EOS "
                                       "within `max_new_tokens`; 0 = off", min=0.0)
    novelty_coef: float = param(1.0, "subtracted from each score, times the completion's n-gram overlap with the "
                                "rest of its rollout (0..1, see novelty_ngram): a phrase the policy uses everywhere "
                                "earns less, countering collapse onto the reward model's favourite; 0 = off", min=0.0)
    novelty_ngram: int = param(2, "token n-gram length of that overlap", min=1)
    reward_batch_size: int = param(64, "texts per reward-model / judge call", min=1)

    # --- guards
    max_kl: float = param(60.0, "skip the update of a rollout whose mean KL to the reference exceeds this "
                          "(nats per sample); 0 = off", min=0.0)
    max_approxkl: float = param(2.0, "abandon an update (restoring the pre-update weights) when a minibatch's "
                                "approx KL to the rollout policy exceeds this; 0 = off", min=0.0)

    # --- logging and checkpoints
    sample_every: int = param(10, "pass a table of (prompt, completion, score) to on_samples every N iterations; "
                              "0 = never", min=0)
    num_samples: int = param(8, "rows in that table", min=1)
    checkpoint_every: int = param(25, "write a resumable checkpoint every N iterations; 0 = never", min=0)
    keep_checkpoints: bool = param(False, "keep out_dir/checkpoints after a successful run")
    resume: bool = param(True, "resume from the last checkpoint when one exists")
    threads: int = param(0, "torch CPU threads for the stage (0: leave torch's default)", min=0)

    def validate(self, prefix: str = "ppo") -> None:
        """Cross-field checks (called by ``rlhf.config.from_dict``)."""
        if self.batch_size % self.num_minibatches:
            raise ConfigError(f"{prefix}.num_minibatches: got {self.num_minibatches}; expected a divisor of "
                              f"{prefix}.batch_size={self.batch_size}")

    @property
    def minibatch_size(self) -> int:
        """Episodes per optimiser step."""
        return self.batch_size // self.num_minibatches
