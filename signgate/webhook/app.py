"""The webhook receiver: an ASGI app (FastAPI, as the sandbox) in front of :class:`WebhookReceiver`.

``POST /webhooks/dfns`` takes one Dfns event:

* a body larger than the limit is refused with 413 before it is read in full (a declared
  ``Content-Length`` over the limit is refused before a single byte is read);
* the signature and ``timestampSent`` are verified on the raw bytes before anything else
  (:mod:`signgate.webhook.verify`): 401 otherwise, and nothing happens;
* the body is parsed within limits and the event classified
  (:mod:`signgate.webhook.events`): a body that is not UTF-8, nests too deep, is not JSON
  or lacks Dfns's required fields is 400, a kind Dfns does not define is 422; no body,
  signed or not, gets a 500;
* the notice is signalled to its workflow (:mod:`signgate.webhook.routing`): 200 once
  Temporal took it, and 200 too for events that concern no workflow of ours (logged, so
  Dfns does not retry them for a day) and for a resolved approval held to travel with its
  request's status event; 503 only when Temporal could not take it, so Dfns delivers it
  again.

``GET /healthz`` answers 200 with counters of what was received, and never a secret;
``GET /metrics`` serves the same counts, and the verification and signal latencies, in
Prometheus's text format (:mod:`signgate.webhook.metrics`).
Every answer is JSON; every refusal is logged as ``webhook.rejected`` with its reason.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr

from signgate.logs import get_logger
from signgate.webhook.events import Notice, parse_notice
from signgate.webhook.metrics import CONTENT_TYPE, ReceiverMetrics
from signgate.webhook.routing import EventRouter, TemporalUnavailable
from signgate.webhook.verify import (
    DEFAULT_TOLERANCE_SECONDS,
    SIGNATURE_HEADER,
    Rejection,
    VerifiedDelivery,
    WebhookRejected,
    verify_delivery,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PATH",
    "Reply",
    "SecretSource",
    "StaticSecrets",
    "WebhookReceiver",
    "create_app",
]

DEFAULT_PATH: Final = "/webhooks/dfns"
DEFAULT_MAX_BODY_BYTES: Final = 1_048_576

_log = get_logger("signgate.webhook")


class SecretSource(Protocol):
    """Where the receiver gets the secrets it accepts (see :class:`~.secrets.SecretStore`)."""

    def secrets(self) -> Sequence[SecretStr]: ...

    def refresh(self) -> bool: ...


class StaticSecrets:
    """A fixed list of secrets (tests, or secrets handed over by a secret manager)."""

    def __init__(self, *secrets: SecretStr | str) -> None:
        self._secrets = tuple(s if isinstance(s, SecretStr) else SecretStr(s) for s in secrets)

    def secrets(self) -> Sequence[SecretStr]:
        return self._secrets

    def refresh(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status and JSON body."""

    status: int
    body: dict[str, Any]


class WebhookReceiver:
    """Verify, classify and route one delivery; framework-free, so tests call it directly.

    ``clock`` gives unix seconds (the reference for ``timestampSent``). ``stats`` counts
    outcomes (``delivered``, ``held``, ``duplicate``, ``not-ours``, ``closed``, ``ignored``,
    ``unavailable``), refusals (``rejected:<reason>``) and verified events that were
    Dfns retries (``redelivered``); ``kinds`` counts verified events by kind.
    """

    def __init__(
        self,
        secrets: SecretSource,
        router: EventRouter,
        *,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = secrets
        self._router = router
        self.tolerance_seconds = tolerance_seconds
        self.max_body_bytes = max_body_bytes
        self._clock = clock
        self.stats: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.metrics = ReceiverMetrics()

    async def handle(self, body: bytes, signature: str | None, *, remote: str = "-") -> Reply:
        """Answer one delivery of ``body`` with the ``X-DFNS-WEBHOOK-SIGNATURE`` value."""
        started = time.perf_counter()
        if len(body) > self.max_body_bytes:
            return self.too_large(len(body), remote=remote)
        try:
            try:
                verified = self._verify(body, signature)
            finally:
                self.metrics.verified_in(time.perf_counter() - started)
            notice = parse_notice(verified.payload)
        except WebhookRejected as exc:
            return self.rejected(exc, remote=remote)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # The explicit checks should have caught it; still the body's fault, not ours.
            return self.rejected(
                WebhookRejected(
                    Rejection.INVALID_EVENT,
                    f"the body is not a Dfns event ({type(exc).__name__})",
                ),
                remote=remote,
            )
        except _NoSecrets:
            self.stats["unavailable"] += 1
            self.metrics.event("unavailable")
            _log.error("webhook.no_secret", advice="run `signgate webhook register --url URL`")
            return Reply(503, {"error": "unavailable", "message": "no webhook secret configured"})
        self.kinds[notice.kind] += 1
        self.metrics.kind(notice.kind, attempt=notice.attempt)
        if notice.attempt > 1:
            self.stats["redelivered"] += 1
        return await self._route(
            notice, signed_with=verified.secret_index, remote=remote, started=started
        )

    async def aclose(self) -> None:
        """The receiver is stopping: let the router send what it holds back."""
        await self._router.aclose()

    def too_large(self, size: int | None, *, remote: str = "-") -> Reply:
        """The answer to a body over :attr:`max_body_bytes` (``size`` when known)."""
        told = f"{size} bytes" if size is not None else "the body"
        return self.rejected(
            WebhookRejected(
                Rejection.BODY_TOO_LARGE,
                f"{told} exceeds the limit of {self.max_body_bytes} bytes",
            ),
            remote=remote,
        )

    def rejected(self, exc: WebhookRejected, *, remote: str = "-") -> Reply:
        """Count, log and answer a refusal."""
        self.stats[f"rejected:{exc.reason}"] += 1
        self.metrics.rejected(str(exc.reason))
        _log.warning(
            "webhook.rejected",
            reason=str(exc.reason),
            status=exc.status,
            detail=exc.message,
            remote=remote,
        )
        return Reply(exc.status, {"error": str(exc.reason), "message": exc.message})

    def _verify(self, body: bytes, signature: str | None) -> VerifiedDelivery:
        secrets = self._secrets.secrets()
        if not secrets and self._secrets.refresh():
            secrets = self._secrets.secrets()
        if not secrets:
            raise _NoSecrets
        now = self._clock()
        try:
            return verify_delivery(
                body, signature, secrets, now=now, tolerance=self.tolerance_seconds
            )
        except WebhookRejected as exc:
            # A rotation may have happened since the secrets were read: look once more.
            if exc.reason is not Rejection.BAD_SIGNATURE or not self._secrets.refresh():
                raise
        return verify_delivery(
            body, signature, self._secrets.secrets(), now=now, tolerance=self.tolerance_seconds
        )

    async def _route(
        self, notice: Notice, *, signed_with: int, remote: str, started: float
    ) -> Reply:
        fields: dict[str, Any] = {
            "event_id": notice.event_id,
            "kind": notice.kind,
            "attempt": notice.attempt,
        }
        if signed_with > 0:
            fields["signed_with"] = "an older accepted secret"
        routing = time.perf_counter()
        try:
            delivery = await self._router.deliver(notice)
        except TemporalUnavailable as exc:
            self.stats["unavailable"] += 1
            self.metrics.event("unavailable")
            self.metrics.signalled_in(time.perf_counter() - routing, "unavailable")
            _log.warning("webhook.unavailable", error=str(exc), remote=remote, **fields)
            return Reply(503, {"error": "unavailable", "message": str(exc)})
        self.stats[delivery.outcome] += 1
        self.metrics.event(delivery.outcome)
        self.metrics.signalled_in(time.perf_counter() - routing, delivery.outcome)
        log = _log.info if delivery.outcome in ("delivered", "not-ours", "closed") else _log.debug
        log(
            f"webhook.{delivery.outcome.replace('-', '_')}",
            detail=delivery.detail,
            workflow_ids=list(delivery.workflow_ids),
            external_id=getattr(notice, "external_id", None),
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
            **fields,
        )
        return Reply(200, {"outcome": delivery.outcome, "detail": delivery.detail})


class _NoSecrets(Exception):
    """No webhook secret is configured, so no event can be verified."""


def create_app(receiver: WebhookReceiver, *, path: str = DEFAULT_PATH) -> FastAPI:
    """The ASGI app serving ``receiver`` at ``path`` (plus ``GET /healthz`` and ``/metrics``)."""
    app = FastAPI(
        title="signgate webhook receiver", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.receiver = receiver

    @app.post(path)
    async def receive(request: Request) -> JSONResponse:
        remote = request.client.host if request.client is not None else "-"
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdecimal():
                reply = receiver.rejected(
                    WebhookRejected(Rejection.INVALID_EVENT, "Content-Length is not a number"),
                    remote=remote,
                )
                return _json(reply)
            if int(declared) > receiver.max_body_bytes:
                return _json(receiver.too_large(int(declared), remote=remote))
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > receiver.max_body_bytes:
                return _json(receiver.too_large(None, remote=remote))
        reply = await receiver.handle(
            bytes(body), request.headers.get(SIGNATURE_HEADER), remote=remote
        )
        return _json(reply)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "counts": dict(receiver.stats), "kinds": dict(receiver.kinds)}
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(receiver.metrics.render(), media_type=CONTENT_TYPE)

    return app


def _json(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, status_code=reply.status)
