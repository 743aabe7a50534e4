"""Org, users, service accounts, Key credentials, bearer tokens and permissions.

Bearer tokens are JWT-shaped like Dfns's (HS256 under a per-org secret kept in the
database) and carry ``"https://custom/app_metadata": {"orgId", "userId", "tokenId"}``, so
SDKs that read the org from the token work. A token is honoured only if its signature
checks, it has not expired on the sandbox clock, and its row exists and is active.

Credential private keys are generated at bootstrap. They are kept in the database only
so the credentials file (mode 0600) can be rewritten on every start; the server itself
verifies assertions with the public keys alone.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from signgate.sandbox.clock import Clock, isoformat
from signgate.sandbox.config import CredentialAlgorithm, OrgConfig
from signgate.sandbox.db import Database, RowCache
from signgate.sandbox.ids import new_id

TOKEN_ISSUER = "signgate-sandbox"  # noqa: S105 - an issuer name, not a secret
APP_METADATA_CLAIM = "https://custom/app_metadata"
USERNAME_CLAIM = "https://custom/username"

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sandbox_org (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, jwt_secret TEXT NOT NULL,
        date_created TEXT NOT NULL, initiator_user_id TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sandbox_users (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, username TEXT NOT NULL,
        is_service_account INTEGER NOT NULL, is_active INTEGER NOT NULL,
        permissions TEXT NOT NULL, date_created TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sandbox_credentials (
        cred_id TEXT PRIMARY KEY, uuid TEXT NOT NULL, user_id TEXT NOT NULL,
        algorithm TEXT NOT NULL, public_key_pem TEXT NOT NULL, private_key_pem TEXT NOT NULL,
        is_active INTEGER NOT NULL, date_created TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sandbox_tokens (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, kind TEXT NOT NULL, token TEXT NOT NULL,
        is_active INTEGER NOT NULL, date_created TEXT NOT NULL, expires_ts REAL NOT NULL)""",
]


def b64url(data: bytes) -> str:
    """base64url without padding, as Dfns uses everywhere."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url`; raises ``ValueError`` on bad input."""
    if not isinstance(text, str) or any(c in text for c in "+/= \n"):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


def permission_allows(patterns: frozenset[str], permission: str) -> bool:
    """``*`` allows everything, ``Policies:*`` everything under ``Policies:``."""
    for pattern in patterns:
        if pattern in ("*", permission):
            return True
        if pattern.endswith(":*") and permission.startswith(pattern[:-1]):
            return True
    return False


@dataclass(frozen=True)
class Caller:
    """The identity behind a verified bearer token."""

    org_id: str
    user_id: str
    name: str
    username: str
    is_service_account: bool
    token_id: str
    permissions: frozenset[str]

    @property
    def kind(self) -> str:
        # Dfns reports service accounts as CustomerEmployee users with isServiceAccount.
        return "CustomerEmployee"

    def can(self, permission: str) -> bool:
        return permission_allows(self.permissions, permission)

    def __repr__(self) -> str:
        return f"Caller(user_id={self.user_id!r}, name={self.name!r}, token_id={self.token_id!r})"


@dataclass(frozen=True)
class Credential:
    cred_id: str
    uuid: str
    user_id: str
    algorithm: CredentialAlgorithm
    public_key_pem: str
    is_active: bool

    def public_key(self) -> Any:
        return _load_public_key(self.public_key_pem)


class IdentityService:
    """Creates the org at first start and answers "who is this token?"."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        db.ensure_schema(_SCHEMA)
        # The org, users, tokens and credentials never change after bootstrap (nothing
        # updates or deletes them), so what is read from them once is kept: every call
        # verifies its bearer token and most verify a JWT or a credential too. Expiry is
        # still checked on every use, against the sandbox clock.
        self._org: RowCache[str, dict[str, Any]] = RowCache(db)
        self._callers: RowCache[str, tuple[Caller, float]] = RowCache(db)  # by bearer token
        self._credentials: RowCache[str, Credential] = RowCache(db)
        self._credentials_of: RowCache[str, tuple[Credential, ...]] = RowCache(db)

    # --- bootstrap -------------------------------------------------------------------

    def is_bootstrapped(self) -> bool:
        return self._db.query_one("SELECT id FROM sandbox_org") is not None

    def bootstrap(self, config: OrgConfig, *, token_days_valid: int) -> dict[str, str]:
        """Create the org, identities, credentials and tokens; returns name -> user id."""
        now = self._clock.now()
        user_ids = {ident.name: new_id("us") for ident in config.identities}
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO sandbox_org (id, name, jwt_secret, date_created, initiator_user_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    new_id("or"),
                    config.org_name,
                    secrets.token_hex(32),
                    isoformat(now),
                    user_ids[config.initiator],
                ),
            )
            for ident in config.identities:
                user_id = user_ids[ident.name]
                self._db.execute(
                    "INSERT INTO sandbox_users (id, name, username, is_service_account, "
                    "is_active, permissions, date_created) VALUES (?, ?, ?, ?, 1, ?, ?)",
                    (
                        user_id,
                        ident.name,
                        ident.username,
                        int(ident.is_service_account),
                        json.dumps(list(ident.permissions)),
                        isoformat(now),
                    ),
                )
                private_key = generate_credential_key(ident.credential)
                self._db.execute(
                    "INSERT INTO sandbox_credentials (cred_id, uuid, user_id, algorithm, "
                    "public_key_pem, private_key_pem, is_active, date_created) "
                    "VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
                    (
                        b64url(new_id("cr").encode("ascii")),
                        new_id("cr"),
                        user_id,
                        ident.credential,
                        public_pem(private_key),
                        private_pem(private_key),
                        isoformat(now),
                    ),
                )
                self.issue_token(
                    user_id,
                    kind="ServiceAccount" if ident.is_service_account else "PersonalAccessToken",
                    days_valid=token_days_valid,
                )
        return user_ids

    def issue_token(self, user_id: str, *, kind: str, days_valid: int) -> str:
        """Mint and store a bearer token for ``user_id``; returns the JWT."""
        user = self._user_row(user_id)
        org = self.org()
        token_id = new_id("to")
        iat = int(self._clock.now_ts())
        exp = iat + days_valid * 86400
        payload = {
            "iss": TOKEN_ISSUER,
            "aud": "dfns:auth:user",
            "sub": f"{org['id']}-{user_id}",
            "jti": token_id,
            USERNAME_CLAIM: user["username"],
            APP_METADATA_CLAIM: {
                "orgId": org["id"],
                "userId": user_id,
                "tokenId": token_id,
                "tokenKind": "Service" if user["is_service_account"] else "Pat",
            },
            "iat": iat,
            "exp": exp,
        }
        token = self.sign_jwt(payload)
        self._db.execute(
            "INSERT INTO sandbox_tokens (id, user_id, kind, token, is_active, date_created, "
            "expires_ts) VALUES (?, ?, ?, ?, 1, ?, ?)",
            (token_id, user_id, kind, token, isoformat(self._clock.now()), float(exp)),
        )
        return token

    # --- JWTs --------------------------------------------------------------------------

    def org(self) -> dict[str, Any]:
        org = self._org.get("org")
        if org is None:
            row = self._db.query_one("SELECT * FROM sandbox_org")
            if row is None:
                raise RuntimeError("the sandbox org has not been created yet")
            org = self._org.keep("org", dict(row))
        return dict(org)

    def sign_jwt(self, payload: dict[str, Any]) -> str:
        """HS256 JWT under the org secret."""
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = b64url(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = f"{header}.{body}".encode("ascii")
        mac = hmac.new(self._secret(), signing_input, hashlib.sha256).digest()
        return f"{header}.{body}.{b64url(mac)}"

    def verify_jwt(
        self, token: str, *, audience: str, check_expiry: bool = True
    ) -> dict[str, Any] | None:
        """The payload of a JWT we minted for ``audience``, if it checks (and is unexpired)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            mac = b64url_decode(parts[2])
            payload = json.loads(b64url_decode(parts[1]))
        except ValueError:
            return None
        expected = hmac.new(
            self._secret(), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(mac, expected) or not isinstance(payload, dict):
            return None
        if payload.get("aud") != audience:
            return None
        exp = payload.get("exp")
        if not isinstance(exp, int | float):
            return None
        if check_expiry and exp <= self._clock.now_ts():
            return None
        return payload

    def _secret(self) -> bytes:
        return bytes.fromhex(str(self.org()["jwt_secret"]))

    # --- lookups -----------------------------------------------------------------------

    def caller_for_token(self, token: str) -> Caller | None:
        """The caller a bearer token stands for, or ``None`` when it is not honoured."""
        known = self._callers.get(token)
        if known is not None:
            caller, expires_ts = known
            return caller if expires_ts > self._clock.now_ts() else None
        payload = self.verify_jwt(token, audience="dfns:auth:user")
        if payload is None:
            return None
        meta = payload.get(APP_METADATA_CLAIM)
        if not isinstance(meta, dict):
            return None
        row = self._db.query_one(
            "SELECT t.id AS token_id, t.is_active AS token_active, t.expires_ts, u.* "
            "FROM sandbox_tokens t JOIN sandbox_users u ON u.id = t.user_id WHERE t.id = ?",
            (str(meta.get("tokenId")),),
        )
        if row is None or not row["token_active"] or not row["is_active"]:
            return None
        if row["id"] != meta.get("userId") or row["expires_ts"] <= self._clock.now_ts():
            return None
        caller = self._caller(row)
        self._callers.keep(token, (caller, min(float(payload["exp"]), row["expires_ts"])))
        return caller

    def _caller(self, row: Any) -> Caller:
        """A caller from a ``sandbox_users`` row joined with its token's ``token_id``."""
        return Caller(
            org_id=str(self.org()["id"]),
            user_id=row["id"],
            name=row["name"],
            username=row["username"],
            is_service_account=bool(row["is_service_account"]),
            token_id=row["token_id"],
            permissions=frozenset(json.loads(row["permissions"])),
        )

    def user_ids_by_name(self) -> dict[str, str]:
        return {
            row["name"]: row["id"] for row in self._db.query("SELECT id, name FROM sandbox_users")
        }

    def initiator_user_id(self) -> str:
        return str(self.org()["initiator_user_id"])

    def caller_for_user(self, user_id: str) -> Caller:
        """A caller for ``user_id`` using its first active token (bootstrap-time actions)."""
        row = self._db.query_one(
            "SELECT t.id AS token_id, u.* FROM sandbox_users u JOIN sandbox_tokens t "
            "ON t.user_id = u.id WHERE u.id = ? AND t.is_active = 1 ORDER BY t.rowid LIMIT 1",
            (user_id,),
        )
        if row is None:
            raise KeyError(user_id)
        return self._caller(row)

    def credentials_of(self, user_id: str) -> list[Credential]:
        known = self._credentials_of.get(user_id)
        if known is not None:
            return list(known)
        rows = self._db.query(
            "SELECT * FROM sandbox_credentials WHERE user_id = ? AND is_active = 1 ORDER BY rowid",
            (user_id,),
        )
        credentials = tuple(_credential(row) for row in rows)
        return list(self._credentials_of.keep(user_id, credentials) if credentials else ())

    def credential(self, cred_id: str) -> Credential | None:
        known = self._credentials.get(cred_id)
        if known is not None:
            return known
        row = self._db.query_one("SELECT * FROM sandbox_credentials WHERE cred_id = ?", (cred_id,))
        return self._credentials.keep(cred_id, _credential(row)) if row is not None else None

    def _user_row(self, user_id: str) -> dict[str, Any]:
        row = self._db.query_one("SELECT * FROM sandbox_users WHERE id = ?", (user_id,))
        if row is None:
            raise KeyError(user_id)
        return dict(row)

    # --- the credentials file ------------------------------------------------------------

    def credentials_document(self) -> dict[str, Any]:
        """Everything a client needs to act as each identity (secrets included)."""
        org = self.org()
        identities: dict[str, Any] = {}
        rows = self._db.query("SELECT * FROM sandbox_users ORDER BY rowid")
        for user in rows:
            cred = self._db.query_one(
                "SELECT * FROM sandbox_credentials WHERE user_id = ? AND is_active = 1 "
                "ORDER BY rowid LIMIT 1",
                (user["id"],),
            )
            token = self._db.query_one(
                "SELECT * FROM sandbox_tokens WHERE user_id = ? AND is_active = 1 "
                "ORDER BY rowid LIMIT 1",
                (user["id"],),
            )
            identities[user["name"]] = {
                "userId": user["id"],
                "username": user["username"],
                "kind": "ServiceAccount" if user["is_service_account"] else "User",
                "isServiceAccount": bool(user["is_service_account"]),
                "permissions": json.loads(user["permissions"]),
                "tokenId": token["id"] if token else None,
                "authToken": token["token"] if token else None,
                "credId": cred["cred_id"] if cred else None,
                "credentialAlgorithm": cred["algorithm"] if cred else None,
                "privateKeyPem": cred["private_key_pem"] if cred else None,
            }
        initiator = next(
            name
            for name, ident in identities.items()
            if ident["userId"] == org["initiator_user_id"]
        )
        return {
            "orgId": org["id"],
            "orgName": org["name"],
            "initiator": initiator,
            "identities": identities,
        }


@functools.lru_cache(maxsize=256)
def _load_public_key(pem: str) -> Any:
    # Parsed once per credential: the key objects are immutable.
    return serialization.load_pem_public_key(pem.encode("ascii"))


def _credential(row: Any) -> Credential:
    return Credential(
        cred_id=row["cred_id"],
        uuid=row["uuid"],
        user_id=row["user_id"],
        algorithm=row["algorithm"],
        public_key_pem=row["public_key_pem"],
        is_active=bool(row["is_active"]),
    )


def generate_credential_key(algorithm: CredentialAlgorithm) -> PrivateKeyTypes:
    """A fresh private key for a Key credential of ``algorithm``."""
    if algorithm == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ECDSA-secp256k1":
        return ec.generate_private_key(ec.SECP256K1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: PrivateKeyTypes) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_pem(key: PrivateKeyTypes) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def write_credentials_file(path: str | Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as JSON readable by the owner only (0600), atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
