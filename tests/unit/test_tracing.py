"""signgate.tracing: off by default, on by setting, and a clear error for what cannot work."""

from __future__ import annotations

import os

import pytest
from opentelemetry.sdk.trace import TracerProvider
from temporalio.contrib.opentelemetry import TracingInterceptor

from signgate import tracing
from signgate.settings import Settings


def test_tracing_is_off_by_default_and_adds_no_interceptor() -> None:
    assert Settings.from_env({}).tracing_enabled is False
    stop = tracing.configure_tracing(False, service_name="x")
    assert tracing.client_interceptors() == []
    assert not tracing.tracing_enabled()
    stop()


def test_on_every_client_carries_the_interceptor_until_shut_down() -> None:
    stop = tracing.configure_tracing(True, service_name="x", tracer_provider=TracerProvider())
    try:
        (interceptor,) = tracing.client_interceptors()
        assert isinstance(interceptor, TracingInterceptor)
        again = tracing.configure_tracing(True, service_name="y")
        assert tracing.client_interceptors() == [interceptor], "a second call changes nothing"
        assert again is tracing.shutdown_tracing
    finally:
        stop()
    assert tracing.client_interceptors() == []


def test_an_unknown_exporter_is_named_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(tracing.TracingError, match=r"OTEL_TRACES_EXPORTER='zipkin'.*otlp"):
        tracing.configure_tracing(True, service_name="x")
    assert not tracing.tracing_enabled()


def test_the_otlp_exporter_is_built_from_the_otel_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "payouts-worker")
    provider = tracing._provider_from_env(dict(os.environ), "signgate-worker")
    assert provider.resource.attributes["service.name"] == "payouts-worker"
    provider.shutdown()
