"""Count every HTTP call to Dfns on the activity's meter: route template, method, status class.

:class:`MeteredTransport` wraps the transport of the worker's one Dfns ``httpx`` client
(built in ``worker.py``), so the Dfns client itself knows nothing of Temporal (its import
fence) and every call it makes is counted, retries included. Inside an activity the count
goes on ``activity.metric_meter()`` (which adds the activity and workflow type); outside
one on the meter the worker passes in, if any.

Labels are bounded: ``route`` is a template (``/keys/{id}/signatures``, see
:func:`signgate.metrics.route_template`), ``status_class`` one of ``2xx`` ``3xx`` ``4xx``
``5xx`` ``429`` ``transport``. No id, token or body is ever a label.
"""

from __future__ import annotations

from typing import Final

import httpx
from temporalio import activity
from temporalio.common import MetricCounter, MetricMeter

from signgate.metrics import DFNS_CALLS, route_template, status_class

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
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError:
            self._count(request, None)
            raise
        self._count(request, response.status_code)
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()

    def _count(self, request: httpx.Request, status: int | None) -> None:
        counter = self._counter()
        if counter is None:
            return
        counter.add(
            1,
            {
                "route": route_template(request.url.path, self._base_path),
                "method": request.method,
                "status_class": status_class(status),
            },
        )

    def _counter(self) -> MetricCounter | None:
        if activity.in_activity():
            return activity.metric_meter().create_counter(DFNS_CALLS, _DESCRIPTION)
        return self._fallback
