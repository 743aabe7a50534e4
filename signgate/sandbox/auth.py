"""Bearer authentication and Dfns User Action Signing.

``POST /auth/action/init`` stores a challenge bound to (caller, method, path, payload);
``POST /auth/action`` verifies the Key credential's assertion over the raw clientData
bytes (Ed25519, ECDSA P-256 / secp256k1 with DER signatures, RSA PKCS#1 v1.5) and mints a
single-use user-action token. Every guarded write then presents that token in
``X-DFNS-USERACTION``; :meth:`AuthService.check_user_action` enforces that it exists, is
unused and unexpired, was minted for the same bearer identity, and matches the request's
method, path (no query) and payload. Payloads are compared as parsed JSON because the
official Python SDK signs a compact serialisation and sends a differently spaced body.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from signgate.sandbox.clock import Clock
from signgate.sandbox.db import Database
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.identity import Caller, Credential, IdentityService, b64url, b64url_decode
from signgate.sandbox.ids import new_id

NOT_AUTHORIZED = "Not Authorized."
UA_INVALID = "user action signature is missing or invalid"
UA_USED = "user action has already been used"
CHALLENGE_INVALID = "Challenge token is not valid."
NO_CREDENTIAL = "User does not have a credential that can be used for the application."
NONCE_INVALID = "request nonce is missing or invalid"
NONCE_USED = "request nonce has already been used"

_CHALLENGE_AUDIENCE = "dfns:auth:challenge"
_USER_ACTION_AUDIENCE = "dfns:auth:user-action"

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sandbox_ua_challenges (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, token_id TEXT NOT NULL,
        challenge TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
        payload TEXT NOT NULL, created_ts REAL NOT NULL, expires_ts REAL NOT NULL,
        used_ts REAL)""",
    """CREATE TABLE IF NOT EXISTS sandbox_user_actions (
        id TEXT PRIMARY KEY, challenge_id TEXT NOT NULL, user_id TEXT NOT NULL,
        token_id TEXT NOT NULL, cred_id TEXT NOT NULL, method TEXT NOT NULL,
        path TEXT NOT NULL, payload TEXT NOT NULL, created_ts REAL NOT NULL,
        expires_ts REAL NOT NULL, used_ts REAL)""",
    """CREATE TABLE IF NOT EXISTS sandbox_nonces (
        nonce TEXT PRIMARY KEY, created_ts REAL NOT NULL)""",
]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
    "RSA-SHA256": hashes.SHA256,
    "RSA-SHA384": hashes.SHA384,
    "RSA-SHA512": hashes.SHA512,
}


class AuthService:
    """Verifies bearer tokens, runs the challenge/assertion flow and checks UA tokens."""

    def __init__(
        self, db: Database, clock: Clock, identity: IdentityService, *, ttl_seconds: float = 900
    ) -> None:
        self._db = db
        self._clock = clock
        self._identity = identity
        self._ttl = ttl_seconds
        db.ensure_schema(_SCHEMA)

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller behind an ``Authorization: Bearer`` header, else 401."""
        if not authorization:
            raise SandboxError(401, NOT_AUTHORIZED)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SandboxError(401, NOT_AUTHORIZED)
        caller = self._identity.caller_for_token(token.strip())
        if caller is None:
            raise SandboxError(401, NOT_AUTHORIZED)
        return caller

    # --- POST /auth/action/init ------------------------------------------------------------

    def init_action(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """Create a challenge for the action described in ``body`` (already schema-valid)."""
        credentials = self._identity.credentials_of(caller.user_id)
        if not credentials:
            raise SandboxError(401, NO_CREDENTIAL)
        now = self._clock.now_ts()
        challenge_id = new_id("ch")
        challenge = b64url(secrets.token_bytes(32))
        self._db.execute(
            "INSERT INTO sandbox_ua_challenges (id, user_id, token_id, challenge, method, path, "
            "payload, created_ts, expires_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                challenge_id,
                caller.user_id,
                caller.token_id,
                challenge,
                str(body["userActionHttpMethod"]).upper(),
                canonical_path(str(body["userActionHttpPath"])),
                str(body["userActionPayload"]),
                now,
                now + self._ttl,
            ),
        )
        identifier = self._short_lived_jwt(_CHALLENGE_AUDIENCE, caller, challenge_id, now)
        allow = [{"type": "public-key", "id": c.cred_id} for c in credentials]
        return {
            "challenge": challenge,
            "challengeIdentifier": identifier,
            "externalAuthenticationUrl": "",
            "allowCredentials": {"key": allow, "webauthn": []},
            "supportedCredentialKinds": [
                {"kind": "Key", "factor": "first", "requiresSecondFactor": False}
            ],
            "userVerification": "required",
            "attestation": "none",
        }

    # --- POST /auth/action -----------------------------------------------------------------

    def complete_action(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """Verify the signed challenge and mint a single-use user-action token."""
        identifier = str(body["challengeIdentifier"])
        claims = self._identity.verify_jwt(identifier, audience=_CHALLENGE_AUDIENCE)
        if claims is None:
            raise SandboxError(400, CHALLENGE_INVALID)
        row = self._db.query_one(
            "SELECT * FROM sandbox_ua_challenges WHERE id = ?", (str(claims.get("jti")),)
        )
        now = self._clock.now_ts()
        if (
            row is None
            or row["user_id"] != caller.user_id
            or row["used_ts"] is not None
            or row["expires_ts"] <= now
        ):
            raise SandboxError(400, CHALLENGE_INVALID)
        factor = body["firstFactor"]
        if factor.get("kind") != "Key":
            raise SandboxError(
                400,
                f"firstFactor.kind {factor.get('kind')!r} is not supported by the sandbox; "
                "use a Key credential",
            )
        assertion = factor["credentialAssertion"]
        credential = self._identity.credential(str(assertion["credId"]))
        if credential is None or credential.user_id != caller.user_id or not credential.is_active:
            raise SandboxError(401, NO_CREDENTIAL)
        verify_key_assertion(credential, assertion, expected_challenge=str(row["challenge"]))
        with self._db.transaction():
            consumed = self._db.execute(
                "UPDATE sandbox_ua_challenges SET used_ts = ? WHERE id = ? AND used_ts IS NULL",
                (now, row["id"]),
            )
            if consumed != 1:
                raise SandboxError(400, CHALLENGE_INVALID)
            action_id = new_id("ua")
            self._db.execute(
                "INSERT INTO sandbox_user_actions (id, challenge_id, user_id, token_id, cred_id, "
                "method, path, payload, created_ts, expires_ts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    action_id,
                    row["id"],
                    caller.user_id,
                    caller.token_id,
                    credential.cred_id,
                    row["method"],
                    row["path"],
                    row["payload"],
                    now,
                    now + self._ttl,
                ),
            )
        return {"userAction": self._short_lived_jwt(_USER_ACTION_AUDIENCE, caller, action_id, now)}

    def _short_lived_jwt(self, audience: str, caller: Caller, jti: str, now: float) -> str:
        """A challenge identifier or user-action token: names its row, expires with it."""
        return self._identity.sign_jwt(
            {
                "aud": audience,
                "sub": caller.user_id,
                "jti": jti,
                "iat": int(now),
                "exp": int(now + self._ttl),
            }
        )

    # --- guarded writes ----------------------------------------------------------------------

    def check_user_action(
        self, caller: Caller, header: str | None, *, method: str, path: str, body: bytes
    ) -> None:
        """Consume the ``X-DFNS-USERACTION`` token for this request, or raise 403/400."""
        if not header:
            raise SandboxError(403, UA_INVALID)
        claims = self._identity.verify_jwt(
            header.strip(), audience=_USER_ACTION_AUDIENCE, check_expiry=False
        )
        if claims is None:
            raise SandboxError(403, UA_INVALID)
        row = self._db.query_one(
            "SELECT * FROM sandbox_user_actions WHERE id = ?", (str(claims.get("jti")),)
        )
        if row is None:
            raise SandboxError(403, UA_INVALID)
        if row["used_ts"] is not None:
            raise SandboxError(400, UA_USED)
        now = self._clock.now_ts()
        if (
            row["expires_ts"] <= now
            or row["user_id"] != caller.user_id
            or row["method"] != method.upper()
            or row["path"] != canonical_path(path)
            or not payload_matches(str(row["payload"]), body)
        ):
            raise SandboxError(403, UA_INVALID)
        consumed = self._db.execute(
            "UPDATE sandbox_user_actions SET used_ts = ? WHERE id = ? AND used_ts IS NULL",
            (now, row["id"]),
        )
        if consumed != 1:
            raise SandboxError(400, UA_USED)

    # --- X-DFNS-NONCE (older SDKs) ---------------------------------------------------------------

    def check_nonce(self, header: str) -> None:
        """Validate and consume an ``X-DFNS-NONCE`` value: base64url JSON {uuid, date}."""
        try:
            decoded = json.loads(b64url_decode(header.strip()))
        except ValueError:
            raise SandboxError(400, NONCE_INVALID) from None
        if not isinstance(decoded, dict):
            raise SandboxError(400, NONCE_INVALID)
        uuid, date = decoded.get("uuid"), decoded.get("date")
        if not isinstance(uuid, str) or len(uuid) < 13 or not isinstance(date, str):
            raise SandboxError(400, NONCE_INVALID)
        try:
            datetime.fromisoformat(date.replace("Z", "+00:00"))
        except ValueError:
            raise SandboxError(400, NONCE_INVALID) from None
        inserted = self._db.execute(
            "INSERT OR IGNORE INTO sandbox_nonces (nonce, created_ts) VALUES (?, ?)",
            (uuid, self._clock.now_ts()),
        )
        if inserted != 1:
            raise SandboxError(400, NONCE_USED)

    def reset(self) -> None:
        """Forget challenges, user-action tokens and nonces (for ``/_local/reset``)."""
        with self._db.transaction():
            for table in ("sandbox_ua_challenges", "sandbox_user_actions", "sandbox_nonces"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


def canonical_path(path: str) -> str:
    """The path a user action is bound to: no query string, no fragment."""
    return path.split("?", 1)[0].split("#", 1)[0]


def payload_matches(signed: str, body: bytes) -> bool:
    """Compare the signed ``userActionPayload`` with the body as parsed JSON.

    ``""`` (nothing signed) matches an empty body, ``null`` and ``{}``, because the Python
    SDK signs ``""`` for an empty body yet sends ``{}``.
    """
    return bool(_parse_payload(signed.encode("utf-8")) == _parse_payload(body))


_NO_BODY = object()


def _parse_payload(raw: bytes) -> Any:
    if not raw.strip():
        return _NO_BODY
    try:
        value = json.loads(raw)
    except ValueError:
        return ("raw", raw)
    if value is None or value == {}:
        return _NO_BODY
    return value


def verify_key_assertion(
    credential: Credential, assertion: dict[str, Any], *, expected_challenge: str
) -> None:
    """Check a Key credential assertion; raises 400 naming what is wrong."""
    try:
        client_data_bytes = b64url_decode(str(assertion["clientData"]))
        signature = b64url_decode(str(assertion["signature"]))
    except ValueError:
        raise SandboxError(
            400, "credentialAssertion.clientData and .signature must be base64url strings"
        ) from None
    try:
        client_data = json.loads(client_data_bytes)
    except ValueError:
        raise SandboxError(400, "credentialAssertion.clientData is not JSON") from None
    if not isinstance(client_data, dict) or client_data.get("type") != "key.get":
        raise SandboxError(400, "credentialAssertion.clientData.type must be 'key.get'")
    if client_data.get("challenge") != expected_challenge:
        raise SandboxError(
            400, "credentialAssertion.clientData.challenge does not match the issued challenge"
        )
    algorithm = assertion.get("algorithm")
    if algorithm is not None and str(algorithm).upper() not in _HASHES:
        raise SandboxError(400, f"credentialAssertion.algorithm {algorithm!r} is not supported")
    digest = _HASHES[str(algorithm).upper()]() if algorithm else hashes.SHA256()
    key = credential.public_key()
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, client_data_bytes)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, client_data_bytes, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, client_data_bytes, padding.PKCS1v15(), digest)
        else:
            raise SandboxError(400, "the credential's key type is not supported")
    except (InvalidSignature, ValueError):
        raise SandboxError(
            400, "credentialAssertion.signature does not verify with the credential's public key"
        ) from None
