"""Count every HTTP call to Dfns on the activity's meter: route template, method, status class.

:class:`MeteredTransport` wraps the transport of the worker's one Dfns ``httpx`` client
(built in ``worker.py``), so the Dfns client itself knows nothing of Temporal (its import
fence) and every call it makes is counted, retries included. Inside an activity the count
goes on ``activity.metric_meter()`` (which adds the activity and workflow type); outside
one on the meter the worker passes in, if any.

Each call is also a client span (``Dfns POST /keys/{id}/signatures``) when tracing is on
(:mod:`signgate.tracing`): inside an activity, a child of the activity's span. Its
attributes are the method, the route template and the status code, nothing else.

Labels are bounded: ``route`` is a template (``/keys/{id}/signatures``, see
:func:`signgate.metrics.route_template`), ``status_class`` one of ``2xx`` ``3xx`` ``4xx``
``5xx`` ``429`` ``transport``. No id, token or body is ever a label.
"""

from __future__ import annotations

from typing import Final

import httpx
from opentelemetry import trace
from temporalio import activity
from temporalio.common import MetricCounter, MetricMeter

from signgate.metrics import DFNS_CALLS, route_template, status_class
from signgate.tracing import current_tracer

__all__ = ["MeteredTransport"]

_DESCRIPTION: Final = "HTTP calls to Dfns, by route template, method and status class"


class MeteredTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport that counts each request it sends on a Temporal meter."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        base_path: str = "",
        fallback: MetricMeter | None = None,
    ) -> None:
        self._inner = inner
        self._base_path = base_path
        self._fallback = (
            fallback.create_counter(DFNS_CALLS, _DESCRIPTION) if fallback is not None else None
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the inner transport and count it, whatever happens."""
        route = route_template(request.url.path, self._base_path)
        with current_tracer().start_as_current_span(
            f"Dfns {request.method} {route}",
            kind=trace.SpanKind.CLIENT,
            attributes={"http.request.method": request.method, "url.template": route},
        ) as span:
            try:
                response = await self._inner.handle_async_request(request)
            except httpx.TransportError as exc:
                self._count(route, request.method, None)
                span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_status(trace.StatusCode.ERROR, f"HTTP {response.status_code}")
        self._count(route, request.method, response.status_code)
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()

    def _count(self, route: str, method: str, status: int | None) -> None:
        counter = self._counter()
        if counter is None:
            return
        counter.add(1, {"route": route, "method": method, "status_class": status_class(status)})

    def _counter(self) -> MetricCounter | None:
        if activity.in_activity():
            return activity.metric_meter().create_counter(DFNS_CALLS, _DESCRIPTION)
        return self._fallback
