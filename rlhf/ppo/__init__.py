"""PPO for causal language models (TRL >= 1.13 no longer ships one).

Read :mod:`rlhf.ppo.trainer` top to bottom for one iteration; the arithmetic (GAE, clipped
losses, KL estimators and controllers) is in :mod:`rlhf.ppo.core`; :mod:`rlhf.ppo.rollout`
samples, :mod:`rlhf.ppo.rewards` scores, :mod:`rlhf.ppo.model` is the policy with its value head,
:mod:`rlhf.ppo.config` the ``ppo`` params section, :mod:`rlhf.ppo.checkpoint` save / resume.

Import from the modules: the package re-exports nothing, so importing the config does not import
the trainer (and a stage's DVC deps list what it really runs).
"""
