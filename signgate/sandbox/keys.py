"""Keys, the wallets they back, and legacy (G1) public keys.

Key material is generated at first start and lives only in the database. The wire shapes
follow Dfns's spec: ``publicKey`` is hex without ``0x`` (SEC1 compressed for secp256k1,
raw 32 bytes for ed25519); wallet addresses are derived for EVM networks (lowercase hex),
Solana (base58) and Bitcoin (BIP-86 key-path taproot, bech32m).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from signgate import crypto
from signgate.sandbox.clock import Clock, isoformat
from signgate.sandbox.config import KeyConfig, PublicKeyConfig
from signgate.sandbox.db import Database, RowCache
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.ids import new_id

EVM_NETWORKS = frozenset(
    {
        "ArbitrumOne",
        "ArbitrumSepolia",
        "AvalancheC",
        "AvalancheCFuji",
        "Base",
        "BaseSepolia",
        "Berachain",
        "BerachainBepolia",
        "Bob",
        "BobSepolia",
        "Bsc",
        "BscTestnet",
        "Celo",
        "CeloAlfajores",
        "Codex",
        "CodexSepolia",
        "Ethereum",
        "EthereumGoerli",
        "EthereumHolesky",
        "EthereumHoodi",
        "EthereumSepolia",
        "FantomOpera",
        "FantomTestnet",
        "FlareC",
        "FlareCCoston2",
        "Ink",
        "InkSepolia",
        "Optimism",
        "OptimismSepolia",
        "Plume",
        "PlumeSepolia",
        "Polygon",
        "PolygonAmoy",
        "Race",
        "RaceSepolia",
    }
)
_BITCOIN_HRP = {"Bitcoin": "bc", "BitcoinSignet": "tb", "BitcoinTestnet3": "tb"}
_SOLANA_NETWORKS = frozenset({"Solana", "SolanaDevnet"})

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sandbox_keys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, scheme TEXT NOT NULL,
        curve TEXT NOT NULL, secret_hex TEXT NOT NULL, public_key_hex TEXT NOT NULL,
        status TEXT NOT NULL, date_created TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sandbox_wallets (
        id TEXT PRIMARY KEY, key_id TEXT NOT NULL, network TEXT NOT NULL,
        address TEXT, name TEXT, tags TEXT NOT NULL, status TEXT NOT NULL,
        external_id TEXT, date_created TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sandbox_public_keys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, key_id TEXT NOT NULL,
        tags TEXT NOT NULL, date_created TEXT NOT NULL)""",
]


def is_evm_network(network: str | None) -> bool:
    return network in EVM_NETWORKS


@dataclass(frozen=True)
class KeyMaterial:
    """A key's scheme, curve and secret; the secret never shows in a repr."""

    key_id: str
    scheme: str
    curve: str
    public_key: bytes
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class WalletInfo:
    wallet_id: str
    key_id: str
    network: str
    tags: tuple[str, ...]


class KeyService:
    """Stores keys, wallets and legacy public keys and renders them in Dfns's shapes."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        db.ensure_schema(_SCHEMA)
        # Keys and wallets never change once created (at bootstrap) and every signature
        # request reads them.
        self._materials: RowCache[str, KeyMaterial] = RowCache(db)
        self._wallets_of_key: RowCache[str, tuple[WalletInfo, ...]] = RowCache(db)
        self._wallets: RowCache[str, WalletInfo] = RowCache(db)

    # --- bootstrap -------------------------------------------------------------------

    def create_from_config(
        self, keys: tuple[KeyConfig, ...], public_keys: tuple[PublicKeyConfig, ...]
    ) -> None:
        """Generate the configured keys, wallets and legacy public keys."""
        now = isoformat(self._clock.now())
        ids: dict[str, str] = {}
        with self._db.transaction():
            for key in keys:
                secret, public = _generate(key.curve)
                key_id = new_id("key")
                ids[key.name] = key_id
                self._db.execute(
                    "INSERT INTO sandbox_keys (id, name, scheme, curve, secret_hex, "
                    "public_key_hex, status, date_created) VALUES (?, ?, ?, ?, ?, ?, 'Active', ?)",
                    (key_id, key.name, key.scheme, key.curve, secret.hex(), public.hex(), now),
                )
                for wallet in key.wallets:
                    self._db.execute(
                        "INSERT INTO sandbox_wallets (id, key_id, network, address, name, tags, "
                        "status, external_id, date_created) "
                        "VALUES (?, ?, ?, ?, ?, ?, 'Active', ?, ?)",
                        (
                            new_id("wa"),
                            key_id,
                            wallet.network,
                            wallet_address(key.scheme, public, wallet.network),
                            wallet.name,
                            json.dumps(list(wallet.tags)),
                            wallet.external_id,
                            now,
                        ),
                    )
            for pk in public_keys:
                self._db.execute(
                    "INSERT INTO sandbox_public_keys (id, name, key_id, tags, date_created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (new_id("pk"), pk.name, ids[pk.key], json.dumps(list(pk.tags)), now),
                )

    # --- keys --------------------------------------------------------------------------

    def material(self, key_id: str) -> KeyMaterial:
        known = self._materials.get(key_id)
        if known is not None:
            return known
        row = self._key_row(key_id)
        material = KeyMaterial(
            key_id=row["id"],
            scheme=row["scheme"],
            curve=row["curve"],
            public_key=bytes.fromhex(row["public_key_hex"]),
            secret=bytes.fromhex(row["secret_hex"]),
        )
        return self._materials.keep(key_id, material)

    def get_key(self, key_id: str) -> dict[str, Any]:
        return self._key_wire(self._key_row(key_id), with_wallets=True)

    def _key_row(self, key_id: str) -> Any:
        row = self._db.query_one("SELECT * FROM sandbox_keys WHERE id = ?", (key_id,))
        if row is None:
            raise SandboxError(404, "Key not found", details={"keyId": key_id})
        return row

    def list_keys(self, *, limit: int, pagination_token: str | None) -> dict[str, Any]:
        after = decode_cursor(pagination_token)
        rows = self._db.query(
            "SELECT rowid AS seq, * FROM sandbox_keys WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, limit + 1),
        )
        return page([self._key_wire(r, with_wallets=False) for r in rows[:limit]], rows, limit)

    def key_ids(self) -> dict[str, str]:
        """Key name -> key id."""
        return {r["name"]: r["id"] for r in self._db.query("SELECT id, name FROM sandbox_keys")}

    def _key_wire(self, row: Any, *, with_wallets: bool) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "id": row["id"],
            "name": row["name"],
            "scheme": row["scheme"],
            "curve": row["curve"],
            "publicKey": row["public_key_hex"],
            "status": row["status"],
            "custodial": True,
            "imported": False,
            "exported": False,
            "dateCreated": row["date_created"],
        }
        if with_wallets:
            wire["store"] = {"id": f"sandbox-{row['id']}", "kind": "Mpc", "keyId": row["id"]}
            wire["wallets"] = [
                {"id": w.wallet_id, "network": w.network} for w in self.wallets_of_key(row["id"])
            ]
        return wire

    # --- wallets -------------------------------------------------------------------------

    def wallets_of_key(self, key_id: str) -> list[WalletInfo]:
        known = self._wallets_of_key.get(key_id)
        if known is not None:
            return list(known)
        rows = self._db.query(
            "SELECT * FROM sandbox_wallets WHERE key_id = ? ORDER BY rowid", (key_id,)
        )
        wallets = tuple(_wallet_info(r) for r in rows)
        if self._materials.get(key_id) is not None:
            # Only for a key known to exist: an unknown id must not be remembered as walletless.
            self._wallets_of_key.keep(key_id, wallets)
        return list(wallets)

    def wallet_info(self, wallet_id: str) -> WalletInfo:
        known = self._wallets.get(wallet_id)
        if known is not None:
            return known
        return self._wallets.keep(wallet_id, _wallet_info(self._wallet_row(wallet_id)))

    def get_wallet(self, wallet_id: str) -> dict[str, Any]:
        return self._wallet_wire(self._wallet_row(wallet_id))

    def _wallet_row(self, wallet_id: str) -> Any:
        row = self._db.query_one("SELECT * FROM sandbox_wallets WHERE id = ?", (wallet_id,))
        if row is None:
            raise SandboxError(404, "Wallet not found", details={"walletId": wallet_id})
        return row

    def list_wallets(self, *, limit: int, pagination_token: str | None) -> dict[str, Any]:
        after = decode_cursor(pagination_token)
        rows = self._db.query(
            "SELECT rowid AS seq, * FROM sandbox_wallets WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, limit + 1),
        )
        return page([self._wallet_wire(r) for r in rows[:limit]], rows, limit)

    def _wallet_wire(self, row: Any) -> dict[str, Any]:
        key = self._db.query_one("SELECT * FROM sandbox_keys WHERE id = ?", (row["key_id"],))
        if key is None:  # pragma: no cover - wallets are only created with their key
            raise SandboxError(500, "wallet without a key")
        wire: dict[str, Any] = {
            "id": row["id"],
            "network": row["network"],
            "signingKey": {
                "id": key["id"],
                "scheme": key["scheme"],
                "curve": key["curve"],
                "publicKey": key["public_key_hex"],
            },
            "status": row["status"],
            "dateCreated": row["date_created"],
            "custodial": True,
            "tags": json.loads(row["tags"]),
        }
        if row["address"]:
            wire["address"] = row["address"]
        if row["name"]:
            wire["name"] = row["name"]
        if row["external_id"]:
            wire["externalId"] = row["external_id"]
        return wire

    # --- legacy public keys ----------------------------------------------------------------

    def public_key_record(self, public_key_id: str) -> dict[str, Any]:
        row = self._db.query_one(
            "SELECT p.*, k.scheme, k.curve, k.public_key_hex FROM sandbox_public_keys p "
            "JOIN sandbox_keys k ON k.id = p.key_id WHERE p.id = ?",
            (public_key_id,),
        )
        if row is None:
            raise SandboxError(404, "PublicKey not found", details={"publicKeyId": public_key_id})
        return dict(row)

    def get_public_key(self, public_key_id: str, *, org_id: str) -> dict[str, Any]:
        row = self.public_key_record(public_key_id)
        return {
            "id": row["id"],
            "orgId": org_id,
            "publicKey": row["public_key_hex"],
            "isEddsa": row["scheme"] == "EdDSA",
            "groupSize": 3,
            "groupThreshold": 2,
            "signerIds": [],
            "tags": json.loads(row["tags"]),
            "status": "Active",
            "dateCreated": row["date_created"],
        }

    def public_key_ids(self) -> dict[str, str]:
        return {
            r["name"]: r["id"] for r in self._db.query("SELECT id, name FROM sandbox_public_keys")
        }

    def credentials_summary(self) -> dict[str, Any]:
        """Public ids for the credentials file: keys, their wallets, legacy public keys."""
        keys: dict[str, Any] = {}
        for row in self._db.query("SELECT * FROM sandbox_keys ORDER BY rowid"):
            keys[row["name"]] = {
                "keyId": row["id"],
                "scheme": row["scheme"],
                "curve": row["curve"],
                "publicKey": row["public_key_hex"],
                "wallets": [self.get_wallet(w.wallet_id) for w in self.wallets_of_key(row["id"])],
            }
        public_keys = {
            r["name"]: {"publicKeyId": r["id"], "keyId": r["key_id"]}
            for r in self._db.query("SELECT * FROM sandbox_public_keys ORDER BY rowid")
        }
        return {"keys": keys, "publicKeys": public_keys}


def _wallet_info(row: Any) -> WalletInfo:
    return WalletInfo(
        wallet_id=row["id"],
        key_id=row["key_id"],
        network=row["network"],
        tags=tuple(json.loads(row["tags"])),
    )


def _generate(curve: str) -> tuple[bytes, bytes]:
    while True:
        secret = secrets.token_bytes(32)
        try:
            if curve == "ed25519":
                return secret, crypto.ed25519_public_key(secret)
            return secret, crypto.secp256k1_public_key(secret)
        except ValueError:  # pragma: no cover - a secret >= n, probability 2**-128
            continue


def wallet_address(scheme: str, public_key: bytes, network: str) -> str | None:
    """The address of a wallet on ``network``, for the networks the sandbox knows."""
    if scheme == "ECDSA" and is_evm_network(network):
        return crypto.evm_address(public_key).lower()
    if scheme == "EdDSA" and network in _SOLANA_NETWORKS:
        return base58(public_key)
    if scheme == "Schnorr" and network in _BITCOIN_HRP:
        # The x-only internal key is the compressed key without its parity byte (BIP-340).
        output_key, _parity = crypto.taproot_tweak_public_key(public_key[1:], None)
        return bech32m_segwit(_BITCOIN_HRP[network], 1, output_key)
    return None


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    """Bitcoin-alphabet base58 (Solana addresses)."""
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = _B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + out


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONST = 0x2BC830A3


def _bech32_polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32m_segwit(hrp: str, version: int, program: bytes) -> str:
    """BIP-350 bech32m address for a segwit v1+ witness program."""
    acc, bits, data = 0, 0, [version]
    for byte in program:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod([*expanded, *data, 0, 0, 0, 0, 0, 0]) ^ _BECH32M_CONST
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[d] for d in data + checksum)


def encode_cursor(seq: int) -> str:
    """Opaque pagination token for "after row ``seq``"."""
    return "c" + format(seq, "x")


def decode_cursor(token: str | None) -> int:
    """Inverse of :func:`encode_cursor`; 400 on a token we did not issue."""
    if token is None:
        return 0
    try:
        if not token.startswith("c"):
            raise ValueError(token)
        return int(token[1:], 16)
    except ValueError:
        raise SandboxError(400, "query.paginationToken: not a valid pagination token") from None


def page(items: list[dict[str, Any]], rows: list[Any], limit: int) -> dict[str, Any]:
    """``{items, nextPageToken?}`` from ``limit + 1`` fetched rows (each with ``seq``)."""
    out: dict[str, Any] = {"items": items}
    if len(rows) > limit:
        out["nextPageToken"] = encode_cursor(int(rows[limit - 1]["seq"]))
    return out
