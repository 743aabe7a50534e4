"""The one exception sandbox code raises to answer a request with a Dfns error envelope."""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """An HTTP error in Dfns's shape: ``{"error": {"id", "status", "message", "details"?}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.code = code
        self.headers = headers or {}
