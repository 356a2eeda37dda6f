"""Candidates for a prompt: K samples of a causal LM, reproducible from a visible seed.

A *candidate generator* is any callable ``generator(prompt, sampling) -> list[str]`` returning
``sampling.k`` full texts (prompt + completion, as the reward model scores them). The app takes
one; tests inject a plain function, the ``label`` command a :class:`ModelGenerator`, which loads
its model once, lazily, on first use (the app calls it in a worker thread, never on the event loop).

Model specs (``--model``):

- ``auto`` (default): the registry's ``policy@champion`` when there is one, else ``models/policy``,
  else ``models/base``;
- ``base`` / ``policy``: ``models/base`` / ``models/policy`` of the project;
- ``registry:NAME``, ``registry:NAME@ALIAS`` or ``registry:NAME@VERSION`` (e.g. ``registry:policy@champion``,
  ``registry:policy@3``; :func:`rlhf_ops.registry.parse_spec`): a version of the MLflow registry,
  downloaded once;
- any other value: a directory written by ``save_pretrained``.
"""
from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from rlhf.data.clean import normalize_text
from rlhf.files import dir_hash


@dataclass(frozen=True)
class SamplingParams:
    """How candidates are sampled; all of it is stored with every label.

    Defaults follow the PPO stage's sampling (``params.yaml`` ``ppo``), so the labelled texts look
    like the policy's rollouts.
    """

    k: int = 4                  # candidates per prompt
    seed: int = 0               # torch seed of the sampling (shown to the annotator)
    temperature: float = 1.0    # softmax temperature
    top_k: int = 0              # 0: no top-k filter
    top_p: float = 1.0          # 1: no nucleus filter
    max_new_tokens: int = 16    # tokens sampled after the prompt

    def stored(self) -> dict:
        """The fields kept in the database (everything but ``k``)."""
        out = asdict(self)
        del out["k"]
        return out

    def with_seed(self, seed: int) -> "SamplingParams":
        return replace(self, seed=seed)


CandidateGenerator = Callable[[str, SamplingParams], list[str]]


def distinct_candidates(generate: CandidateGenerator, prompt: str, sampling: SamplingParams, *,
                        rounds: int = 3) -> list[str]:
    """Up to ``sampling.k`` distinct, normalised, non-empty texts from ``generate``.

    Identical samples cannot be ranked against each other (and ``prepare`` rejects a list with a
    text twice), so duplicates are dropped and more are drawn, with seeds ``seed + r * 1_000_003``
    for round ``r``: the result still depends on ``sampling.seed`` alone. May return fewer than
    ``k`` texts when the model keeps repeating itself.
    """
    texts: list[str] = []
    for r in range(rounds):
        seed = (sampling.seed + r * 1_000_003) % 2**32
        for text in generate(prompt, sampling.with_seed(seed)):
            text = normalize_text(text)
            if text and text not in texts:
                texts.append(text)
            if len(texts) == sampling.k:
                return texts
    return texts


def project_path(root: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model spec points: a local directory, a display name and a version string."""

    directory: Path
    name: str
    version: str


def _registry_exists() -> bool:
    """False when the tracking store is a SQLite file that does not exist (asking would create it)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:  # setup_environment() not called: no project store to ask
        return False
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def resolve_model(spec: str, root: Path) -> ResolvedModel:
    """Turn a model spec (module docstring) into a local directory; ``FileNotFoundError`` naming it if none.

    ``ValueError`` for a malformed ``registry:`` spec.
    """
    if spec == "auto":
        if _registry_exists():
            from rlhf_ops.registry import CHAMPION, POLICY, by_alias

            if by_alias(POLICY, CHAMPION) is not None:
                return resolve_model(f"registry:{POLICY}@{CHAMPION}", root)
        for name in ("policy", "base"):
            if (root / "models" / name / "config.json").is_file():
                return resolve_model(name, root)
        raise FileNotFoundError(f"--model auto: no registered policy champion and no models/policy or models/base "
                                f"under {root}; run the pipeline first or pass --model DIR")
    if spec.startswith("registry:"):
        from rlhf_ops import registry

        found = registry.resolve_spec(spec)  # ValueError (malformed) or FileNotFoundError (no such version)
        return ResolvedModel(registry.download(found), f"registry:{found.name}", found.version)
    directory = project_path(root, f"models/{spec}" if spec in ("base", "policy") else spec)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"--model {spec}: {directory} is not a model directory (no config.json); expected "
                                "'auto', 'base', 'policy', 'registry:NAME@ALIAS', 'registry:NAME@VERSION' or a "
                                "save_pretrained directory")
    shown = str(directory.relative_to(root)) if directory.is_relative_to(root) else str(directory)
    return ResolvedModel(directory, shown, dir_hash(directory)[:12])


class ModelGenerator:
    """A :data:`CandidateGenerator` backed by a causal LM, loaded on the first call.

    ``model_name`` and ``model_version`` say what generated the candidates (``None`` until loaded).
    Calls are serialised by a lock: sampling reseeds (a fork of) torch's global generator. ``threads``: torch CPU
    threads (0: leave torch's default).
    """

    def __init__(self, spec: str, root: str | Path, *, threads: int = 0):
        self.spec = spec
        self.root = Path(root)
        self.threads = threads
        self.model_name: str | None = None
        self.model_version: str | None = None
        self._resolved: ResolvedModel | None = None
        self._model = self._tok = None
        self._lock = threading.Lock()

    def resolve(self) -> ResolvedModel:
        """Find the model's directory (cheap: no weights are loaded); raises ``FileNotFoundError``."""
        if self._resolved is None:
            self._resolved = resolve_model(self.spec, self.root)
        return self._resolved

    def load(self) -> None:
        """Resolve the spec and load the model (once; later calls return at once)."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch

        from rlhf.models.base_lm import load_causal_lm

        if self.threads:
            torch.set_num_threads(self.threads)
        resolved = self.resolve()
        self._model, self._tok = load_causal_lm(resolved.directory)
        self._model.eval()
        self.model_name, self.model_version = resolved.name, resolved.version

    def __call__(self, prompt: str, sampling: SamplingParams) -> list[str]:
        """``sampling.k`` texts ``prompt + completion`` from the pipeline's one sampler (PPO's).

        ``ValueError`` naming both numbers when the prompt's tokens plus ``max_new_tokens`` do not
        fit the model's positions.
        """
        from rlhf.sampling import sample_completions

        with self._lock:
            self._load()
            completions = sample_completions(self._model, self._tok, [prompt], n=sampling.k,
                                             max_new_tokens=sampling.max_new_tokens, seed=sampling.seed,
                                             temperature=sampling.temperature, top_k=sampling.top_k,
                                             top_p=sampling.top_p)[0]
        return [prompt + c for c in completions]
