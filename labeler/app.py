"""The labelling web app (Starlette): plain HTML and JS served from this package, JSON API.

Pages: ``/`` (label), ``/dataset`` (labels, agreement, rejected submissions). API (JSON bodies):

- ``GET  /api/config``                     K, sampling defaults, limits, model
- ``POST /api/tasks``                      ``{annotator, prompt?, seed?}`` -> a task: prompt and K candidates
- ``POST /api/labels``                     ``{annotator, task_id, tiers}`` -> the stored label (201)
- ``POST /api/tasks/{task_id}/skip``       ``{annotator}``
- ``POST /api/undo``                       ``{annotator}`` -> the undone label and its reopened task
- ``GET  /api/progress?annotator=NAME``    labels and skips today (server's local day), per annotator

A refused request gets a 4xx ``{"error": reason, "detail": ...}`` and a row in the ``rejected``
table (:mod:`labeler.validation` lists the reasons); a body over 64 kB or nested deeper than
:data:`MAX_JSON_DEPTH` is refused before it is parsed. The app has no authentication: it answers
only requests whose ``Host`` header names it (``LabelerConfig.allowed_hosts``, localhost names by
default), so a web page the annotator visits cannot reach it through DNS rebinding. Candidate
generation runs in a one-thread pool, so a slow model never blocks the event loop, and the model
(loaded lazily by the generator) is used by one sampling at a time. Every page is sent with a Content-Security-Policy that allows
only this server's own scripts and styles: even a missed escape could not run injected script.
"""
from __future__ import annotations

import asyncio
import json
import random
import secrets
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, time as day_time, timezone
from pathlib import Path
from typing import Any, Sequence

from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from labeler.agreement import compare_labels, summarize
from labeler.generation import CandidateGenerator, SamplingParams, distinct_candidates
from labeler.store import LabelStore
from labeler.validation import Rejection, clean_annotator, clean_prompt, clean_seed

HERE = Path(__file__).parent
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32  # the API's bodies nest 3 levels (an object holding tiers: a list of lists)
#: Host names served when none are configured (``Host`` headers carry IPv6 literals in brackets).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@dataclass
class LabelerConfig:
    """Settings of one labelling server (the ``label`` command's flags)."""

    sampling: SamplingParams = field(default_factory=SamplingParams)  # k and defaults; the seed is drawn per task
    max_prompt_chars: int = 200     # longest typed prompt, in characters
    max_annotator_chars: int = 64   # longest annotator name
    overlap: float = 0.0            # share of pool tasks that repeat candidates another annotator ranked
    model_name: str = "custom"      # stored as the model when the generator has no ``model_name``
    model_version: str | None = None
    model_spec: str | None = None   # what --model said, shown before the model is loaded
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS  # Host header names answered ('*' = any: open to DNS rebinding)

    def __post_init__(self):
        if not 0.0 <= self.overlap <= 1.0:
            raise ValueError(f"overlap: got {self.overlap}; expected a share in 0..1")
        if self.max_prompt_chars < 1:
            raise ValueError(f"max_prompt_chars: got {self.max_prompt_chars}; expected at least 1")
        self.allowed_hosts = host_patterns(self.allowed_hosts)


def host_patterns(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as ``TrustedHostMiddleware`` patterns: lower case, IPv6 literals also in brackets.

    A name is a host name, an IP address, ``*.domain`` or ``*`` (any); no port. ``ValueError``
    names a bad one.
    """
    import ipaddress

    out: list[str] = []
    for raw in names:
        name = str(raw).strip().lower()
        if not name or "*" in name[1:] or (name.startswith("*") and name not in ("*",) and not name.startswith("*.")):
            raise ValueError(f"allowed host {raw!r}: expected a host name or IP address (no port), '*.domain' or '*'")
        bare = name.strip("[]")
        if ":" in bare:
            try:
                ipaddress.IPv6Address(bare)
            except ValueError:
                raise ValueError(f"allowed host {raw!r}: give the name without a port") from None
            out += [bare, f"[{bare}]"]  # Host headers write IPv6 literals in brackets
        else:
            out.append(name)
    if not out:
        raise ValueError("allowed_hosts: empty; no request could be answered")
    return tuple(dict.fromkeys(out))


class Labeler:
    """The app's state: the store, the candidate generator, the prompt pool and its thread pool."""

    def __init__(self, store: LabelStore, generator: CandidateGenerator, prompts: Sequence[str],
                 config: LabelerConfig, rng: random.Random):
        self.store = store
        self.generator = generator
        self.prompts = list(dict.fromkeys(prompts))
        self.config = config
        self.rng = rng
        self._executor: ThreadPoolExecutor | None = None
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The one generation thread (created on first use, again after a shutdown)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labeler-generate")
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def model_label(self) -> tuple[str, str | None]:
        name = getattr(self.generator, "model_name", None)
        if name:
            return name, getattr(self.generator, "model_version", None)
        return self.config.model_name, self.config.model_version

    def next_pool_prompt(self) -> str:
        """A prompt of the pool with the fewest accepted labels (ties drawn at random)."""
        counts = self.store.prompt_counts()
        fewest = min(counts.get(p, 0) for p in self.prompts)
        return self.rng.choice([p for p in self.prompts if counts.get(p, 0) == fewest])


def _json_error(rejection: Rejection) -> JSONResponse:
    return JSONResponse({"error": rejection.reason, "detail": rejection.detail}, status_code=rejection.status)


async def _refuse(app: Labeler, rejection: Rejection, endpoint: str, body: Any, raw: bytes) -> JSONResponse:
    annotator = body.get("annotator") if isinstance(body, dict) else None
    task_id = body.get("task_id") if isinstance(body, dict) else None
    await run_in_threadpool(app.store.reject, rejection.reason, rejection.detail, endpoint=endpoint,
                            annotator=annotator if isinstance(annotator, str) else None,
                            task_id=None if task_id is None else str(task_id),
                            payload=raw.decode("utf-8", "replace"))
    return _json_error(rejection)


def json_depth(raw: bytes) -> int:
    """How deep the arrays and objects of JSON text ``raw`` nest (brackets inside strings do not count).

    A linear scan, so a hostile body is measured without the recursion ``json.loads`` would need.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


async def _raw_body(request: Request) -> bytes:
    """The request's bytes; raises ``Rejection("invalid_json")`` past :data:`MAX_BODY_BYTES`."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise Rejection("invalid_json", f"request body over {MAX_BODY_BYTES} bytes")
    return raw


def _parse_body(request: Request, raw: bytes) -> Any:
    """The JSON object of a request; raises ``Rejection("invalid_json")`` otherwise."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise Rejection("invalid_json", "expected Content-Type: application/json")
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise Rejection("invalid_json", f"the body nests {depth} levels deep; at most {MAX_JSON_DEPTH}")
    try:
        body = json.loads(raw)
    except RecursionError:  # not reached after the depth check; a refusal all the same
        raise Rejection("invalid_json", f"the body nests too deep; at most {MAX_JSON_DEPTH} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Rejection("invalid_json", f"the body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise Rejection("invalid_json", "the body must be a JSON object")
    return body


def _api(endpoint: str):
    """Wrap a handler ``(app, request, body) -> Response``: parse the body, turn rejections into 4xx + a stored row."""
    def decorator(handler):
        async def route(request: Request) -> Response:
            app: Labeler = request.app.state.labeler
            body: Any = None
            raw = b""
            try:
                raw = await _raw_body(request)
                body = _parse_body(request, raw)
                return await handler(app, request, body)
            except Rejection as rejection:
                return await _refuse(app, rejection, endpoint, body, raw)
        return route
    return decorator


def start_of_today() -> str:
    """The server's local midnight, as a stored-format UTC timestamp."""
    midnight = datetime.combine(datetime.now().date(), day_time()).astimezone()
    return midnight.astimezone(timezone.utc).isoformat(timespec="milliseconds")


async def index(request: Request) -> Response:
    return FileResponse(HERE / "static" / "index.html", media_type="text/html")


async def api_config(request: Request) -> Response:
    app: Labeler = request.app.state.labeler
    name, version = app.model_label()
    sampling = app.config.sampling
    return JSONResponse({"k": sampling.k, "sampling": sampling.stored() | {"seed": None},
                         "max_prompt_chars": app.config.max_prompt_chars,
                         "max_annotator_chars": app.config.max_annotator_chars, "pool_size": len(app.prompts),
                         "model": name, "model_version": version, "model_spec": app.config.model_spec})


@_api("tasks")
async def api_new_task(app: Labeler, request: Request, body: dict) -> Response:
    annotator = clean_annotator(body.get("annotator"), app.config.max_annotator_chars)
    typed = body.get("prompt")
    prompt = clean_prompt(typed, app.config.max_prompt_chars) if typed not in (None, "") else None
    seed = clean_seed(body.get("seed"))
    if prompt is None and seed is None and app.config.overlap and app.rng.random() < app.config.overlap:
        task = await run_in_threadpool(app.store.overlap_task, annotator, app.rng)
        if task is not None:
            return JSONResponse(task.to_json(), status_code=201)
    if prompt is None and not app.prompts:
        raise Rejection("empty_prompt", "the prompt pool is empty: type a prompt")
    source = "typed" if prompt is not None else "pool"
    if prompt is None:
        prompt = await run_in_threadpool(app.next_pool_prompt)
    sampling = app.config.sampling.with_seed(secrets.randbelow(2**31) if seed is None else seed)
    loop = asyncio.get_running_loop()
    try:
        texts = await loop.run_in_executor(app.executor, distinct_candidates, app.generator, prompt, sampling)
    except Exception as e:  # a model that cannot load or sample: say why, keep serving
        return JSONResponse({"error": "generation_failed", "detail": f"{type(e).__name__}: {e}"}, status_code=503)
    if len(texts) < 2:
        return JSONResponse({"error": "too_few_candidates",
                             "detail": f"the model gave {len(texts)} distinct candidate(s) for this prompt and seed; "
                                       "try another seed or prompt"}, status_code=503)
    name, version = app.model_label()
    task = await run_in_threadpool(lambda: app.store.create_task(
        annotator, prompt, texts, prompt_source=source, model=name, model_version=version, sampling=sampling.stored()))
    return JSONResponse(task.to_json(), status_code=201)


@_api("labels")
async def api_submit(app: Labeler, request: Request, body: dict) -> Response:
    annotator = clean_annotator(body.get("annotator"), app.config.max_annotator_chars)
    if "task_id" not in body:
        raise Rejection("unknown_task", "task_id is missing")
    label = await run_in_threadpool(app.store.submit, body["task_id"], annotator, body.get("tiers"))
    return JSONResponse(label.to_json(), status_code=201)


@_api("skip")
async def api_skip(app: Labeler, request: Request, body: dict) -> Response:
    annotator = clean_annotator(body.get("annotator"), app.config.max_annotator_chars)
    task = await run_in_threadpool(app.store.skip, request.path_params["task_id"], annotator)
    return JSONResponse(task.to_json())


@_api("undo")
async def api_undo(app: Labeler, request: Request, body: dict) -> Response:
    annotator = clean_annotator(body.get("annotator"), app.config.max_annotator_chars)
    label, task = await run_in_threadpool(app.store.undo_last, annotator)
    return JSONResponse({"label": label.to_json(), "task": None if task is None else task.to_json()})


async def api_progress(request: Request) -> Response:
    app: Labeler = request.app.state.labeler
    since = start_of_today()
    per_annotator = await run_in_threadpool(app.store.progress, since)
    you = request.query_params.get("annotator", "").strip()
    return JSONResponse({"since": since, "annotators": per_annotator,
                         "you": per_annotator.get(you, {"labels": 0, "skipped": 0}),
                         "team_labels": sum(v["labels"] for v in per_annotator.values())})


def _dataset_context(app: Labeler, limit: int) -> dict[str, Any]:
    labels = app.store.labels(None, newest_first=True)
    accepted = [label for label in labels if label.status == "accepted"]
    comparisons = compare_labels(accepted)
    return {"counts": app.store.counts(), "labels": labels[:limit], "shown": min(limit, len(labels)),
            "total": len(labels), "agreement": summarize(comparisons), "comparisons": len(comparisons),
            "rejections": app.store.rejections(limit=limit), "model": app.model_label()}


async def dataset(request: Request) -> Response:
    app: Labeler = request.app.state.labeler
    try:
        limit = max(1, min(int(request.query_params.get("limit", 200)), 5000))
    except ValueError:
        limit = 200
    context = await run_in_threadpool(_dataset_context, app, limit)
    return HTMLResponse(app.templates.get_template("dataset.html").render(**context))


class SecurityHeaders:
    """ASGI middleware: CSP, no MIME sniffing, no framing, on every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(store: LabelStore, generator: CandidateGenerator, prompts: Sequence[str] = (),
               config: LabelerConfig | None = None, *, seed: int | None = None) -> Starlette:
    """The ASGI app: ``store`` for labels, ``generator(prompt, sampling) -> texts`` for candidates.

    ``prompts``: the pool served when the annotator does not type one. ``seed`` fixes the choice
    of pool prompts and overlap tasks (tests); sampling seeds are drawn per task unless given.
    """
    state = Labeler(store, generator, prompts, config or LabelerConfig(), random.Random(seed))

    @asynccontextmanager
    async def lifespan(_app):
        yield
        state.shutdown()

    app = Starlette(routes=[
        Route("/", index),
        Route("/dataset", dataset),
        Route("/api/config", api_config),
        Route("/api/tasks", api_new_task, methods=["POST"]),
        Route("/api/tasks/{task_id}/skip", api_skip, methods=["POST"]),
        Route("/api/labels", api_submit, methods=["POST"]),
        Route("/api/undo", api_undo, methods=["POST"]),
        Route("/api/progress", api_progress),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ], lifespan=lifespan)
    app.state.labeler = state
    # A request naming another host gets a 400 before any route runs (the security headers wrap even that).
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(state.config.allowed_hosts), www_redirect=False)
    app.add_middleware(SecurityHeaders)
    return app
