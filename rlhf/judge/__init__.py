"""The judge: an independent sentiment scorer, P(positive | text) in [0, 1], batched.

It grades the policy's samples in the evaluation stage, a model the policy never trained
against (DESIGN.md §5), and may also serve as a PPO reward (``ppo.reward_source: judge``).

Backends (``JudgeConfig.backend``):

* ``snownlp`` (default, :mod:`rlhf.judge.snownlp_judge`): the naive-Bayes sentiment model that
  ships with the ``snownlp`` package, exactly as ``snownlp.SnowNLP(text).sentiments`` computes
  it, with its word segmentation vectorised over the batch (:mod:`rlhf.judge.segmenter`).
* ``hf`` (:mod:`rlhf.judge.hf_judge`): any Hugging Face text-classification model, id or local
  path; softmax over its labels, the probability of ``positive_label`` (sigmoid of the logit
  when the model has a single label).

Empty or whitespace-only texts get ``empty_score`` (0.5 by default: no evidence either way)
from both backends, without running the model.

Import from the modules (``from rlhf.judge.loader import load_judge``, ``from rlhf.judge.config
import JudgeConfig``): the package re-exports nothing, so the params loader, which needs only the
config, imports neither backend.
"""
