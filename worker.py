"""Composition root of the signgate worker: settings -> logging -> Temporal -> Dfns -> Worker.

Run it with ``python worker.py`` (or ``python -m worker``). Configuration comes from the
environment only:

* ``SIGNGATE_*`` (see :class:`signgate.settings.Settings`): the Dfns base URL, the service
  account's token and credential, the task queue, the metrics port, the ledger file and
  callback secrets;
* Temporal's standard ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``,
  ``TEMPORAL_TLS*`` and ``TEMPORAL_PROFILE`` / config file, read by ``temporalio.envconfig``.

Logs are structlog JSON (or console on a TTY) with the workflow's or activity's context on
every line. SIGTERM or SIGINT stops polling, lets running activities finish for
``SIGNGATE_SHUTDOWN_GRACE_SECONDS`` and exits. With ``SIGNGATE_METRICS_PORT`` set, the
Temporal runtime serves Prometheus metrics on ``SIGNGATE_METRICS_HOST:port/metrics``:
Temporal's own and signgate's (:mod:`signgate.metrics`), every Dfns HTTP call counted by
the client's :class:`~activities.metering.MeteredTransport`.

Secrets stay here: the Dfns client (token, credential key) and the callback secrets are
built into the activity objects; workflow inputs only ever name them.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import structlog
from pydantic import SecretStr
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    PatchActivationInput,
    Worker,
)

from activities.downstream import DownstreamActivities, Ledger, SqliteLedger
from activities.metering import MeteredTransport
from activities.nexus import SigningServiceHandler
from activities.payout import build_evm_transfer
from activities.reconciling import ReconcilerActivities
from activities.signing import SigningActivities
from activities.verification import VerificationActivities
from signgate import activity_api as api
from signgate import ids
from signgate.contracts import ReconcilerInput
from signgate.dfns.auth import CredentialSigner
from signgate.dfns.client import DfnsClient
from signgate.logs import configure_logging, get_logger
from signgate.metrics import histogram_overrides
from signgate.settings import Settings, SettingsError
from signgate.temporal_client import connect_temporal
from signgate.tracing import TracingError, configure_tracing
from workflows.batch import PayoutBatchWorkflow
from workflows.payout import PayoutWorkflow
from workflows.reconciler import ReconcilerWorkflow
from workflows.signature import SignatureWorkflow

__all__ = [
    "ENGINE_WORKFLOWS",
    "LogContextInterceptor",
    "activate_patch",
    "build_dfns_client",
    "build_dfns_http",
    "build_runtime",
    "engine_activities",
    "engine_nexus_handlers",
    "engine_workers",
    "ensure_reconciler",
    "lane_rates",
    "main",
    "run_worker",
]

ENGINE_WORKFLOWS: tuple[type, ...] = (
    SignatureWorkflow,
    PayoutWorkflow,
    PayoutBatchWorkflow,
    ReconcilerWorkflow,
)
"""Every workflow the engine's worker runs."""


def engine_nexus_handlers() -> list[object]:
    """The Nexus services the engine's worker serves: ``signgate.Signing`` (``sign``)."""
    return [SigningServiceHandler()]


_log = get_logger("signgate.worker")


def build_dfns_client(settings: Settings, http: httpx.AsyncClient) -> DfnsClient:
    """The Dfns client of the engine's service account (``http`` owns the base URL)."""
    if settings.dfns_auth_token is None:
        raise SettingsError(
            "SIGNGATE_DFNS_AUTH_TOKEN is not set: the worker needs the token of the service "
            "account that requests signatures"
        )
    pem = settings.credential_private_key_pem()
    signer = None
    if pem is not None and settings.dfns_credential_id is not None:
        signer = CredentialSigner(settings.dfns_credential_id, pem, settings.dfns_app_origin)
    return DfnsClient(
        http,
        auth_token=settings.dfns_auth_token,
        signer=signer,
        app_id=settings.dfns_app_id,
        send_nonce=settings.dfns_send_nonce,
    )


def engine_activities(
    dfns: DfnsClient,
    callback_http: httpx.AsyncClient,
    *,
    callback_secrets: Mapping[str, SecretStr],
    ledgers: Mapping[str, Ledger],
) -> list[Callable[..., Any]]:
    """Every activity the engine's workflows call, bound to their dependencies."""
    verification = VerificationActivities(dfns)
    signing = SigningActivities(dfns, verifier=verification)
    downstream = DownstreamActivities(
        callback_http, callback_secrets=callback_secrets, ledgers=ledgers
    )
    reconciler = ReconcilerActivities(dfns)
    return [
        signing.submit,
        signing.deny_own_approval,
        signing.describe_approval,
        verification.verify,
        verification.verify_carried,
        verification.read_and_verify,
        downstream.deliver_callback,
        downstream.record_ledger,
        build_evm_transfer,
        reconciler.pending_approvals,
        reconciler.waiting_requests,
        reconciler.reconciler_swept,
    ]


def lane_rates(settings: Settings) -> dict[api.Lane, float]:
    """Activities a second each Dfns lane's task queue may dispatch, from the budget settings.

    A lane's budget in calls a minute, divided by the calls one of its activities makes, is
    what the Temporal server enforces for every worker of the queue together. Empty when the
    budget is off.
    """
    rates: dict[api.Lane, float] = {}
    for lane in api.LANES:
        per_minute = settings.dfns_budget_per_minute(lane)
        if per_minute is not None:
            rates[lane] = per_minute / 60 / api.lane_calls(lane)
    return rates


@asynccontextmanager
async def engine_workers(
    client: Client,
    *,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    workflows: Sequence[type] = ENGINE_WORKFLOWS,
    rates: Mapping[api.Lane, float] | None = None,
    nexus_service_handlers: Sequence[object] = (),
    **options: Any,
) -> AsyncIterator[None]:
    """Run the engine on ``task_queue``: one worker for it, one for each Dfns lane's queue.

    ``activities`` are split by :func:`signgate.activity_api.lane_of`: those that call Dfns
    go to their lane's worker (rate-limited by ``rates``, activities a second), the rest to
    the workflows' own. The reads lane's are registered on the workflows' worker too, where
    an unbudgeted engine runs them as local activities (``PollingPolicy.local_reads``); no
    activity task for them is ever sent to that queue; and with ``rates`` set, the workflows'
    worker refuses a starter's local reads (:func:`activate_patch`). ``options`` are passed
    to every worker.
    """
    by_lane: dict[api.Lane | None, list[Callable[..., Any]]] = {}
    for implementation in activities:
        by_lane.setdefault(api.lane_of(implementation), []).append(implementation)
    rates = rates or {}
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            Worker(
                client,
                task_queue=task_queue,
                workflows=list(workflows),
                activities=by_lane.pop(None, []) + by_lane.get("reads", []),
                nexus_service_handlers=list(nexus_service_handlers),
                patch_activation_callback=functools.partial(activate_patch, budgeted=bool(rates)),
                **options,
            )
        )
        for lane in api.LANES:
            if lane not in by_lane:
                continue
            await stack.enter_async_context(
                Worker(
                    client,
                    task_queue=ids.dfns_task_queue(task_queue, lane),
                    activities=by_lane[lane],
                    max_task_queue_activities_per_second=rates.get(lane),
                    **options,
                )
            )
        yield


def activate_patch(input: PatchActivationInput, *, budgeted: bool) -> bool:
    """Whether a workflow's first ``workflow.patched(id)`` turns the patch on (and records it).

    :data:`signgate.ids.BUDGET_QUEUES_READS_PATCH` is on exactly when these workers keep a
    Dfns budget: a starter whose budget is off asked for local reads, which would bypass the
    rate-limited reads queue, so the workflow reads on the queue instead, and the mismatch is
    logged once per run. The choice is made at a run's first poll and kept for the run (it is
    in its history): a run that first polled on an unbudgeted worker keeps local reads until
    it continues as new. Every other patch is a code change and turns on as usual.
    """
    if input.patch_id != ids.BUDGET_QUEUES_READS_PATCH:
        return True
    if budgeted:
        _log.warning(
            "worker.local_reads_refused",
            workflow_id=input.workflow_info.workflow_id,
            run_id=input.workflow_info.run_id,
            reason=(
                "the workflow's input asks for local reads (from a starter whose"
                " SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE is 0?) but these workers keep a Dfns"
                " budget: the reads run on the rate-limited reads queue; give starters and"
                " workers the same budget settings"
            ),
        )
    return budgeted


class LogContextInterceptor(Interceptor):
    """Binds the activity's context to every structlog line it writes (contextvars)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap activity execution."""
        return _ActivityLogContext(next)


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            activity_type=info.activity_type,
            activity_id=info.activity_id,
            attempt=info.attempt,
            workflow_id=info.workflow_id,
            workflow_run_id=info.workflow_run_id,
            workflow_type=info.workflow_type,
            task_queue=info.task_queue,
        ):
            return await super().execute_activity(input)


def build_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting Prometheus metrics, when a metrics port is set."""
    if settings.metrics_port is None:
        return None
    address = f"{settings.metrics_host}:{settings.metrics_port}"
    prometheus = PrometheusConfig(
        bind_address=address, histogram_bucket_overrides=histogram_overrides()
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


def build_dfns_http(settings: Settings, runtime: Runtime | None = None) -> httpx.AsyncClient:
    """The one HTTP client of every Dfns call, each call counted (``signgate_dfns_calls_total``).

    Calls made inside an activity count on its meter; others on ``runtime``'s, if given.
    """
    base = httpx.URL(settings.dfns_base_url)
    transport = MeteredTransport(
        httpx.AsyncHTTPTransport(),
        base_path=base.path,
        fallback=runtime.metric_meter if runtime is not None else None,
    )
    return httpx.AsyncClient(
        base_url=base, timeout=httpx.Timeout(settings.dfns_timeout_seconds), transport=transport
    )


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event,
    client: Client | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run the worker until ``stop`` is set, then shut it down gracefully."""
    runtime = build_runtime(settings) if client is None else None
    async with (
        build_dfns_http(settings, runtime) as dfns_http,
        httpx.AsyncClient(timeout=settings.callback_timeout_seconds) as callback_http,
    ):
        dfns = build_dfns_client(settings, dfns_http)
        if client is None:
            client = await connect_temporal(runtime=runtime)
        ledgers: dict[str, Ledger] = {"default": SqliteLedger(settings.ledger_path)}
        rates = lane_rates(settings)
        workers = engine_workers(
            client,
            task_queue=settings.task_queue,
            nexus_service_handlers=engine_nexus_handlers(),
            activities=engine_activities(
                dfns,
                callback_http,
                callback_secrets=settings.all_callback_secrets(),
                ledgers=ledgers,
            ),
            rates=rates,
            interceptors=[LogContextInterceptor()],
            max_concurrent_activities=settings.max_concurrent_activities,
            max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
            graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_seconds),
        )
        async with workers:
            if settings.reconciler_enabled:
                await ensure_reconciler(client, settings)
            _log.info(
                "worker.started",
                task_queue=settings.task_queue,
                namespace=client.namespace,
                dfns_base_url=settings.dfns_base_url,
                metrics_port=settings.metrics_port,
                dfns_activities_per_second={lane: round(r, 3) for lane, r in rates.items()},
                reconciler=settings.reconciler_enabled,
            )
            if ready is not None:
                ready()
            await stop.wait()
            _log.info("worker.stopping", grace_seconds=settings.shutdown_grace_seconds)
        _log.info("worker.stopped")


async def ensure_reconciler(client: Client, settings: Settings) -> None:
    """Start the task queue's one ``ReconcilerWorkflow`` unless it runs already.

    Every worker of the queue calls this; the workflow id makes them agree on one. A running
    reconciler keeps its interval and pace: terminate it to apply a new
    ``reconcile_interval_seconds`` or ``reconcile_budget_share``.
    """
    workflow_id = ids.reconciler_workflow_id(settings.task_queue)
    handle = await client.start_workflow(
        ReconcilerWorkflow.run,
        ReconcilerInput(
            interval=timedelta(seconds=settings.reconcile_interval_seconds),
            calls_per_minute=settings.reconciler_calls_per_minute(),
        ),
        id=workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    _log.info("worker.reconciler", workflow_id=workflow_id, run_id=handle.first_execution_run_id)


def _quiet_temporal_loggers() -> None:
    # Context goes into fields (temporal_workflow / temporal_activity), not the message, so
    # every line keeps a `noun.verb` event name.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: read settings, configure logging, run until SIGTERM/SIGINT."""
    del argv
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"signgate worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    _quiet_temporal_loggers()
    try:
        stop_tracing = configure_tracing(settings.tracing_enabled, service_name="signgate-worker")
    except TracingError as exc:
        print(f"signgate worker: {exc}", file=sys.stderr)
        return 2

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop=stop)

    try:
        asyncio.run(serve())
    except SettingsError as exc:
        _log.error("worker.misconfigured", error=str(exc))
        return 2
    finally:
        stop_tracing()
    return 0


if __name__ == "__main__":
    sys.exit(main())
