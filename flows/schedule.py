"""Scheduled runs: the pipeline flow as a Prefect deployment with a cron schedule.

Two ways, both against a running Prefect server (``PREFECT_API_URL``), never the ephemeral one
(an ephemeral server lives only as long as the process that started it, so a schedule on it
would never fire):

- :func:`serve`: this process registers the deployment and runs its flow runs (in subprocesses)
  until stopped; stopping pauses the schedule.
- :func:`deploy`: register the deployment on a work pool (e.g. ``--type process``) and return;
  ``prefect worker start --pool <pool>`` runs the flow runs, on this machine or another one.

A scheduled run is an ordinary ``rlhf run``: DVC re-runs only the stages whose inputs changed
(e.g. new human labels exported to ``data/labels/``), the others are reported as skipped.

Prefect is imported inside the functions: importing this module changes nothing and starts nothing.
"""
from __future__ import annotations

import os
from typing import Any

from rlhf_ops.environment import setup_environment

FLOW_NAME = "rlhf-pipeline"  # the name of flows.pipeline.pipeline
DEPLOYMENT_NAME = "scheduled"
ENTRYPOINT = "flows/pipeline.py:pipeline"  # relative to the project root (a work pool's working directory)
HEALTH_TIMEOUT_S = 3.0

START_SERVER_HELP = """\
Start one (it keeps running; its database lives in ~/.prefect unless PREFECT_HOME says otherwise):
    prefect server start
then, in the shell where you run `rlhf schedule`:
    export PREFECT_API_URL=http://127.0.0.1:4200/api"""


class ServerUnavailable(RuntimeError):
    """No Prefect server to register a schedule with; the message says how to start one."""


def api_url() -> str | None:
    """The Prefect API this process talks to (``PREFECT_API_URL`` or the active profile), or ``None``."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url).rstrip("/") if url else None


def check_server(url: str | None = None, timeout: float = HEALTH_TIMEOUT_S) -> str:
    """Return the API URL when a Prefect server answers its health check within ``timeout`` seconds.

    Raises :class:`ServerUnavailable` (with how to start a server) when no API URL is set or the
    server does not answer: Prefect would otherwise fall back to a temporary ephemeral server.
    """
    import httpx

    url = url or api_url()
    if not url:
        raise ServerUnavailable("a schedule needs a running Prefect server, and PREFECT_API_URL is not set.\n"
                                + START_SERVER_HELP)
    try:
        response = httpx.get(f"{url}/health", timeout=timeout)
    except httpx.HTTPError as e:
        raise ServerUnavailable(f"no Prefect server answers at PREFECT_API_URL={url} "
                                f"({type(e).__name__}: {e or 'no answer'}).\n{START_SERVER_HELP}") from None
    # 401/403: a server that wants credentials (PREFECT_API_KEY / PREFECT_API_AUTH_STRING) is still there.
    if response.status_code >= 400 and response.status_code not in (401, 403):
        raise ServerUnavailable(f"PREFECT_API_URL={url} answered its health check with HTTP "
                                f"{response.status_code}; is it a Prefect API URL (ending in /api)?\n"
                                + START_SERVER_HELP)
    return url


def cron_schedule(cron: str, timezone: str = "UTC"):
    """A Prefect cron schedule; ``ValueError`` naming the value when the cron string or timezone is invalid."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.schedules import Cron
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as e:
        reasons = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())
        raise ValueError(f"invalid schedule --cron {cron!r} --timezone {timezone!r}: {reasons} "
                         f"(a 5-field cron string such as '0 3 * * *', an IANA timezone such as 'Europe/Berlin')") from None
    return Cron(cron, timezone=timezone)


def flow_parameters(stages: list[str] | None = None, force: bool = False, retries: int = 0) -> dict[str, Any]:
    """The pipeline flow's parameters for every scheduled run (only those that differ from its defaults)."""
    params: dict[str, Any] = {}
    if stages:
        params["stages"] = list(stages)
    if force:
        params["force"] = True
    if retries:
        params["retries"] = retries
    return params


def serve(cron: str, *, name: str = DEPLOYMENT_NAME, timezone: str = "UTC", parameters: dict | None = None,
          limit: int = 1) -> None:
    """Register ``rlhf-pipeline/<name>`` with the cron schedule and run its flow runs until interrupted.

    ``limit``: flow runs at a time (1: a run due while one is going waits for it; two pipelines
    must not write the same ``dvc.lock``). Stopping (Ctrl-C, SIGTERM) pauses the schedule.
    """
    root = setup_environment()
    check_server()
    schedule = cron_schedule(cron, timezone)
    from flows.pipeline import pipeline

    os.chdir(root)  # the flow runs are started from here (they find dvc.yaml from their working directory)
    pipeline.serve(name=name, schedules=[schedule], parameters=parameters or {}, tags=["rlhf"], limit=limit,
                   description=f"RLHF pipeline in {root}, cron {cron!r} ({timezone})")


def deploy(cron: str, *, pool: str, name: str = DEPLOYMENT_NAME, timezone: str = "UTC",
           parameters: dict | None = None) -> str:
    """Register ``rlhf-pipeline/<name>`` on work pool ``pool`` with the cron schedule; returns its id.

    The deployment's working directory is this project (``flow.from_source``): a process worker
    started with this project's environment (``prefect worker start --pool <pool>``) runs it.
    Raises ``ValueError`` when the pool does not exist.
    """
    root = setup_environment()
    check_server()
    schedule = cron_schedule(cron, timezone)
    from prefect import Flow

    flow = Flow.from_source(source=str(root), entrypoint=ENTRYPOINT)
    try:
        # concurrency_limit=1: a run that comes due while one is going waits (both would write dvc.lock).
        deployment_id = flow.deploy(name=name, work_pool_name=pool, schedules=[schedule], parameters=parameters or {},
                                    concurrency_limit=1, tags=["rlhf"],
                                    description=f"RLHF pipeline in {root}, cron {cron!r} ({timezone})",
                                    build=False, push=False, print_next_steps=False, ignore_warnings=True)
    except ValueError as e:
        if "Could not find work pool" in str(e):
            raise ValueError(f"work pool {pool!r} does not exist on {api_url()}; create it with: "
                             f"prefect work-pool create {pool} --type process") from None
        raise
    return str(deployment_id)
