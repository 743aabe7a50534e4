"""OpenTelemetry tracing, optional and off by default (``SIGNGATE_TRACING_ENABLED=true``).

An entry point (the worker, the CLI, the webhook receiver) calls :func:`configure_tracing`
once. When tracing is on it installs an SDK tracer provider whose exporter and resource come
from the standard ``OTEL_*`` variables (``OTEL_TRACES_EXPORTER``: ``otlp``, the default, or
``console`` or ``none``; ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_*``;
``OTEL_SERVICE_NAME``; ``OTEL_RESOURCE_ATTRIBUTES``), and every Temporal client the process
connects (:func:`signgate.temporal_client.connect_temporal`) carries
``temporalio.contrib.opentelemetry.TracingInterceptor``. That interceptor propagates the trace
in Temporal headers, so one trace runs from ``signgate sign`` (or a caller's
``start_workflow``) through the workflow and its activities; the Dfns HTTP calls inside an
activity are its children (:class:`activities.metering.MeteredTransport`), and the webhook
receiver's signal carries the receiver's trace into the workflow's signal handler.

Span attributes carry no secret and no body: Temporal's interceptor records workflow and
activity types and ids, the Dfns spans the method, the route template and the status.

The SDK and the OTLP exporter are the ``tracing`` extra (``pip install 'signgate[tracing]'``);
without them only ``opentelemetry-api`` is installed and every span is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace

__all__ = [
    "TracingError",
    "client_interceptors",
    "configure_tracing",
    "current_tracer",
    "shutdown_tracing",
    "tracing_enabled",
]

_state: dict[str, Any] = {"interceptor": None}

_NO_SDK = (
    "SIGNGATE_TRACING_ENABLED=true needs the OpenTelemetry SDK: "
    "pip install 'signgate[tracing]' (or set SIGNGATE_TRACING_ENABLED=false)"
)


class TracingError(ValueError):
    """Tracing was asked for and cannot be set up; the message says how to fix it."""


def tracing_enabled() -> bool:
    """Whether :func:`configure_tracing` turned tracing on in this process."""
    return _state["interceptor"] is not None


def client_interceptors() -> list[Any]:
    """The interceptors every Temporal client of this process carries (none when off)."""
    interceptor = _state["interceptor"]
    return [interceptor] if interceptor is not None else []


def configure_tracing(
    enabled: bool, *, service_name: str, tracer_provider: Any = None
) -> Callable[[], None]:
    """Turn tracing on for this process when ``enabled``; returns the flush-and-stop function.

    ``tracer_provider`` (tests) replaces the provider built from ``OTEL_*``; it is then not
    installed globally. ``service_name`` is used unless ``OTEL_SERVICE_NAME`` is set. A
    second call while tracing is on changes nothing.
    """
    if not enabled:
        return lambda: None
    if tracing_enabled():
        return shutdown_tracing
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError:
        # Temporal's interceptor imports the SDK as it loads.
        raise TracingError(_NO_SDK) from None
    provider = tracer_provider
    if provider is None:
        provider = _provider_from_env(os.environ, service_name)
        trace.set_tracer_provider(provider)
    _state["interceptor"] = TracingInterceptor(tracer=provider.get_tracer("signgate"))
    _state["provider"] = provider
    _state["owned"] = tracer_provider is None
    return shutdown_tracing


def shutdown_tracing() -> None:
    """Export what is buffered and turn tracing off (a no-op when it is off)."""
    provider = _state.get("provider")
    owned = _state.get("owned", False)
    _state.update(interceptor=None, provider=None, owned=False)
    shutdown = getattr(provider, "shutdown", None)
    if owned and shutdown is not None:
        shutdown()


def current_tracer() -> trace.Tracer:
    """The tracer of the configured provider, or the global (no-op) one."""
    provider = _state.get("provider")
    if provider is not None and tracing_enabled():
        tracer: trace.Tracer = provider.get_tracer("signgate.dfns")
        return tracer
    return trace.get_tracer("signgate.dfns")


def _provider_from_env(environ: Mapping[str, str], service_name: str) -> Any:
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise TracingError(_NO_SDK) from None
    resource = Resource.create(
        {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    )
    provider = TracerProvider(resource=resource)
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind == "none":
        return provider
    if kind == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        return provider
    if kind != "otlp":
        raise TracingError(
            f"OTEL_TRACES_EXPORTER={kind!r} is not supported: use otlp (the default), "
            "console or none"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise TracingError(
            "the OTLP exporter is missing: pip install 'signgate[tracing]'"
        ) from None
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
