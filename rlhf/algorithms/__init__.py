"""Policy algorithms trained by TRL (>= 1.16) beside our own PPO (:mod:`rlhf.ppo`): GRPO, RLOO and DPO.

The same base model directory, prompt pool and reward scorer as PPO; only the update rule differs.

- :mod:`rlhf.algorithms.config`: the ``grpo``, ``rloo`` and ``dpo`` params sections (typed, validated);
- :mod:`rlhf.algorithms.trl_glue`: what every TRL trainer needs from this project, in one place: the
  training arguments set from the device (TRL's ``bf16=True`` / ``gradient_checkpointing=True``
  defaults are wrong on CPU), a tokenizer that adds no special tokens (our ``[BOS] + prompt`` is put
  into the prompt text), the reward adapter (PPO's reward function as TRL's ``reward_funcs``
  callable) and the ``on_log`` callback that carries TRL's metrics to the caller (``report_to="none"``);
- :mod:`rlhf.algorithms.online`: :func:`~rlhf.algorithms.online.train_grpo`,
  :func:`~rlhf.algorithms.online.train_rloo`;
- :mod:`rlhf.algorithms.dpo`: preference pairs (from rank lists with prompts, or sampled from the base
  and ranked by the reward model) and :func:`~rlhf.algorithms.dpo.train_dpo`.

Like :mod:`rlhf.ppo`, the package re-exports nothing: importing a config does not import TRL.
"""
