"""The one way signgate processes connect to Temporal.

Connection settings are Temporal's own (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
``TEMPORAL_API_KEY``, the TLS variables and config-file profiles, read by
``temporalio.envconfig``); every client carries the pydantic data converter, which the
workflows' models need.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from signgate.tracing import client_interceptors

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"


def temporal_connect_config(
    environ: Mapping[str, str] | None = None, *, default_address: str = DEFAULT_TEMPORAL_ADDRESS
) -> dict[str, Any]:
    """``Client.connect`` keyword arguments from the ``TEMPORAL_*`` settings."""
    config: dict[str, Any] = dict(
        ClientConfig.load_client_connect_config(override_env_vars=environ)
    )
    config.setdefault("target_host", default_address)
    return config


async def connect_temporal(
    environ: Mapping[str, str] | None = None,
    *,
    runtime: Runtime | None = None,
    config: Mapping[str, Any] | None = None,
) -> Client:
    """A client from ``config`` (default: :func:`temporal_connect_config`), pydantic converter.

    With tracing on (:func:`signgate.tracing.configure_tracing`) it carries the tracing
    interceptor, which a worker built on it inherits.
    """
    kwargs = dict(config) if config is not None else temporal_connect_config(environ)
    if runtime is not None:
        kwargs["runtime"] = runtime
    interceptors = client_interceptors()
    if interceptors:
        kwargs["interceptors"] = [*kwargs.get("interceptors", ()), *interceptors]
    return await Client.connect(**kwargs, data_converter=pydantic_data_converter)
