"""The sandbox's credentials file, read the way a test needs it: identities, keys, secrets.

A sandbox writes every identity of its org (bearer token, credential id, PEM private key),
every key with its wallets, and every public key to one JSON file. :class:`Credentials`
reads it; :class:`Identity` is one user or service account, and can answer a User Action
Signing challenge with ``cryptography`` directly (not signgate's signer, which the tests
check against it).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
}


def b64url(data: bytes) -> str:
    """Unpadded base64url, as WebAuthn-style assertions carry bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(body: Any) -> str:
    """JSON without spaces: the bytes a Dfns client signs and sends."""
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True)
class Identity:
    """One user or service account of a sandbox org."""

    name: str
    user_id: str
    auth_token: str = field(repr=False)
    cred_id: str
    algorithm: str
    private_key_pem: str = field(repr=False)

    def sign_challenge(self, challenge: str, *, algorithm: str | None = None) -> dict[str, Any]:
        """A Key credential assertion over ``{"type":"key.get","challenge":...}``."""
        client_data = compact(
            {
                "type": "key.get",
                "challenge": challenge,
                "origin": "http://test",
                "crossOrigin": False,
            }
        ).encode()
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        digest = _HASHES[algorithm or "SHA256"]
        if isinstance(key, ed25519.Ed25519PrivateKey):
            signature = key.sign(client_data)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            signature = key.sign(client_data, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(client_data, padding.PKCS1v15(), digest)
        else:  # pragma: no cover - the sandbox only makes the three kinds above
            raise TypeError(type(key))
        assertion: dict[str, Any] = {
            "credId": self.cred_id,
            "clientData": b64url(client_data),
            "signature": b64url(signature),
        }
        if algorithm is not None:
            assertion["algorithm"] = algorithm
        return {"kind": "Key", "credentialAssertion": assertion}


class Credentials:
    """A sandbox's credentials file (``resolved_credentials_path()`` of its settings)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """Read the file a sandbox wrote."""
        raw: dict[str, Any] = json.loads(path.read_text())
        return cls(raw)

    @property
    def org_id(self) -> str:
        return str(self.raw["orgId"])

    def identity(self, name: str) -> Identity:
        """A user or service account by its name in the org file."""
        raw = self.raw["identities"][name]
        return Identity(
            name=name,
            user_id=raw["userId"],
            auth_token=raw["authToken"],
            cred_id=raw["credId"],
            algorithm=raw["credentialAlgorithm"],
            private_key_pem=raw["privateKeyPem"],
        )

    def key(self, name: str) -> dict[str, Any]:
        """A key's public description (``keyId``, ``publicKey``, ``wallets``...)."""
        key: dict[str, Any] = self.raw["keys"][name]
        return key

    def key_id(self, name: str) -> str:
        return str(self.key(name)["keyId"])

    def wallet_id(self, key_name: str) -> str:
        """The id of the key's first wallet."""
        return str(self.key(key_name)["wallets"][0]["id"])

    def public_key_id(self, name: str) -> str:
        return str(self.raw["publicKeys"][name]["publicKeyId"])

    def secrets(self) -> list[str]:
        """Every secret of the org: bearer tokens and credential private keys (PEM and body).

        The PEM body is also listed in 40-character pieces, so a history or log that holds
        any part of a key is caught, not only one that holds all of it.
        """
        found: list[str] = []
        for raw in self.raw["identities"].values():
            if raw.get("authToken"):
                found.append(raw["authToken"])
            pem = raw.get("privateKeyPem")
            if pem:
                found.append(pem)
                body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
                found.extend(body[i : i + 40] for i in range(0, len(body) - 40, 40))
        return found
