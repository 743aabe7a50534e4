"""signgate's Nexus service: signing offered to workflows in other namespaces.

A caller's workflow imports only this module (and :mod:`signgate.contracts`): it names the
service and its one operation, ``sign``, whose input is a :class:`NexusSignRequest` and whose
result is the :class:`~signgate.contracts.SignatureOutcome` of the ``SignatureWorkflow`` the
handler starts (``activities/nexus.py``, run by the engine's worker). The caller reaches it
through a Nexus endpoint that targets the engine's namespace and task queue (``signgate dev``
creates ``signgate-signing``).
"""

from __future__ import annotations

import nexusrpc

from signgate.contracts import BusinessKey, InputModel, SignatureOutcome, SignatureWorkflowInput

__all__ = ["DEFAULT_ENDPOINT", "NexusSignRequest", "SigningService"]

DEFAULT_ENDPOINT = "signgate-signing"
"""The endpoint ``signgate dev`` creates."""


class NexusSignRequest(InputModel):
    """One signature request: ``request_id`` is its business key (the workflow id, and the
    idempotency key unless ``signature`` names another), so a retried operation attaches."""

    request_id: BusinessKey
    signature: SignatureWorkflowInput


@nexusrpc.service(name="signgate.Signing")
class SigningService:
    """Sign through signgate: approvals, verification and deliveries as for any request."""

    sign: nexusrpc.Operation[NexusSignRequest, SignatureOutcome]
