"""The reward model: a scalar score learned from rank lists with a listwise rank loss.

``config``   :class:`RewardModelConfig` (``params.yaml`` section ``reward_model``)
``loss``     :func:`rank_loss` over batched rank lists, :func:`build_rank_pairs`
``model``    :func:`load_reward_backbone`, :class:`RewardScorer`, save / load
``train``    :func:`train_reward_model`
``evaluate`` :func:`evaluate_reward_model`: pairwise / exact-order accuracy, Kendall tau-b
``baseline`` :func:`fit_baseline`: the linear reference (TF-IDF char n-grams, scikit-learn)
``robustness`` perturbed copies of rank lists and both models' figures on them

Import from the modules (``from rlhf.reward.model import RewardScorer``): the package re-exports
nothing, so importing one module (say the config, as the params loader does) does not import
the others, and a stage's DVC deps list what it really runs (``tests/test_dvc_deps.py``).
"""
