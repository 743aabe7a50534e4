"""Bearer tokens and User Action Signing, over real HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.sandbox.helpers import Dfns
from tests.support.credentials import b64url, compact

HASH_BODY = {"kind": "Hash", "hash": "0x" + "ab" * 32}


def _error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def _jwt_payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return payload


def test_missing_or_bad_bearer_token_is_401(dfns: Dfns) -> None:
    token = dfns.identity("engine").auth_token
    header, payload, signature = token.split(".")
    forged_payload = _jwt_payload(token)
    forged_payload["https://custom/app_metadata"]["userId"] = dfns.identity("alice").user_id
    forged = ".".join([header, b64url(compact(forged_payload).encode()), signature])
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {header}.{payload}.{b64url(b'x' * 32)}"},
    ):
        response = dfns.http.get("/keys", headers=headers)
        assert response.status_code == 401
        error = _error(response)
        assert error["message"] == "Not Authorized."
        assert error["status"] == 401
        assert error["id"]


def test_tokens_are_jwt_shaped_with_dfns_claims(dfns: Dfns) -> None:
    engine = dfns.identity("engine")
    payload = _jwt_payload(engine.auth_token)
    meta = payload["https://custom/app_metadata"]
    assert meta["orgId"] == dfns.credentials.org_id
    assert meta["userId"] == engine.user_id
    assert meta["tokenId"].startswith("to-")
    assert {"iss", "aud", "sub", "iat", "exp"} <= payload.keys()
    assert dfns.get("/keys").status_code == 200


@pytest.mark.parametrize("name", ["engine", "alice", "bob", "carol"])
def test_user_action_with_each_credential_algorithm(dfns: Dfns, name: str) -> None:
    expected = {"engine": "Ed25519", "alice": "ECDSA-P256", "bob": "ECDSA-secp256k1"}
    assert dfns.identity(name).algorithm == expected.get(name, "RSA")
    response = dfns.sign("ed", HASH_BODY, as_=name)
    assert response.status_code == 200, response.text
    assert response.json()["requester"]["userId"] == dfns.identity(name).user_id


@pytest.mark.parametrize(("name", "algorithm"), [("alice", "SHA384"), ("carol", "SHA512")])
def test_assertion_algorithm_selects_the_digest(dfns: Dfns, name: str, algorithm: str) -> None:
    path = f"/keys/{dfns.key_id('ed')}/signatures"
    token = dfns.user_action("POST", path, HASH_BODY, as_=name, algorithm=algorithm)
    assert dfns.send("POST", path, HASH_BODY, as_=name, token=token).status_code == 200


def test_challenge_response_shape(dfns: Dfns) -> None:
    challenge = dfns.challenge("POST", "/keys/x/signatures", "", as_="alice")
    assert challenge["allowCredentials"]["key"] == [
        {"type": "public-key", "id": dfns.identity("alice").cred_id}
    ]
    assert challenge["allowCredentials"]["webauthn"] == []
    assert challenge["supportedCredentialKinds"][0]["kind"] == "Key"
    assert challenge["challengeIdentifier"].count(".") == 2


def test_guarded_write_without_user_action_is_403(dfns: Dfns) -> None:
    path = f"/keys/{dfns.key_id('ed')}/signatures"
    response = dfns.send("POST", path, HASH_BODY, token=None)
    assert response.status_code == 403
    assert _error(response)["message"] == "user action signature is missing or invalid"
    response = dfns.send("POST", path, HASH_BODY, token="garbage")
    assert response.status_code == 403


def test_reused_user_action_is_400(dfns: Dfns) -> None:
    path = f"/keys/{dfns.key_id('ed')}/signatures"
    token = dfns.user_action("POST", path, HASH_BODY)
    assert dfns.send("POST", path, HASH_BODY, token=token).status_code == 200
    again = dfns.send("POST", path, HASH_BODY, token=token)
    assert again.status_code == 400
    assert _error(again)["message"] == "user action has already been used"


def test_expired_user_action_is_403(dfns: Dfns) -> None:
    path = f"/keys/{dfns.key_id('ed')}/signatures"
    token = dfns.user_action("POST", path, HASH_BODY)
    dfns.advance(15 * 60 + 1)
    response = dfns.send("POST", path, HASH_BODY, token=token)
    assert response.status_code == 403
    assert _error(response)["message"] == "user action signature is missing or invalid"


def test_user_action_bound_to_method_path_body_and_identity(dfns: Dfns) -> None:
    path = f"/keys/{dfns.key_id('ed')}/signatures"
    other_path = f"/keys/{dfns.key_id('evm')}/signatures"
    cases = [
        ("PUT", path, HASH_BODY, "engine"),  # signed for another method
        ("POST", other_path, HASH_BODY, "engine"),  # another path
        ("POST", path, {**HASH_BODY, "hash": "0x" + "cd" * 32}, "engine"),  # another body
        ("POST", path, HASH_BODY, "alice"),  # minted for someone else
    ]
    for method, signed_path, signed_body, as_ in cases:
        token = dfns.user_action(method, signed_path, signed_body, as_=as_)
        response = dfns.send("POST", path, HASH_BODY, token=token)
        assert response.status_code == 403, (method, signed_path, signed_body, as_)
        assert _error(response)["message"] == "user action signature is missing or invalid"


def test_payload_compared_as_json_not_bytes(dfns: Dfns) -> None:
    path = f"/keys/{dfns.key_id('ed')}/signatures?ignored=1"
    spaced = json.dumps({"hash": HASH_BODY["hash"], "kind": "Hash"}, indent=2)
    token = dfns.user_action("POST", path, payload=spaced)
    response = dfns.send("POST", path, HASH_BODY, token=token)
    assert response.status_code == 200, response.text


def test_bad_assertions_are_refused(dfns: Dfns) -> None:
    challenge = dfns.challenge("POST", "/keys/x/signatures", "")
    # Signed by alice's key but presented by the engine.
    factor = dfns.identity("alice").sign_challenge(challenge["challenge"])
    response = dfns.present(challenge, factor)
    assert response.status_code == 401
    # The right credential over the wrong challenge.
    factor = dfns.identity("engine").sign_challenge("some-other-challenge")
    response = dfns.present(challenge, factor)
    assert response.status_code == 400
    assert "challenge" in _error(response)["message"]
    # A tampered signature.
    factor = dfns.identity("engine").sign_challenge(challenge["challenge"])
    factor["credentialAssertion"]["signature"] = b64url(b"\x00" * 64)
    response = dfns.present(challenge, factor)
    assert response.status_code == 400
    assert "does not verify" in _error(response)["message"]
    # The genuine assertion works once; the challenge is then spent.
    assert dfns.complete(challenge).status_code == 200
    again = dfns.complete(challenge)
    assert again.status_code == 400
    assert _error(again)["message"] == "Challenge token is not valid."


def test_auth_bodies_are_validated(dfns: Dfns) -> None:
    response = dfns.http.post(
        "/auth/action/init",
        json={"userActionHttpMethod": "POST", "userActionHttpPath": "/x"},
        headers=dfns.headers("engine"),
    )
    assert response.status_code == 400
    assert _error(response)["message"] == "body.userActionPayload: is required"


def test_missing_permission_is_403(dfns: Dfns) -> None:
    response = dfns.sign("ed", HASH_BODY, as_="reader")
    assert response.status_code == 403
    assert _error(response)["message"] == (
        f"CustomerEmployee {dfns.identity('reader').user_id} is not authorized to perform "
        "operation (Keys:Signatures:Create)"
    )
    assert dfns.get("/keys", as_="reader").status_code == 200


def test_legacy_nonce_header_checked_when_present(dfns: Dfns) -> None:
    nonce = b64url(
        compact(
            {"uuid": "0f0e0d0c-0b0a-4000-8000-000000000001", "date": "2024-01-01T00:00:00.000Z"}
        ).encode()
    )
    headers = {**dfns.headers("engine"), "X-DFNS-NONCE": nonce, "X-DFNS-APPID": "ap-test"}
    assert dfns.http.get("/keys", headers=headers).status_code == 200
    reused = dfns.http.get("/keys", headers=headers)
    assert reused.status_code == 400
    assert _error(reused)["message"] == "request nonce has already been used"
    headers["X-DFNS-NONCE"] = "not-a-nonce"
    bad = dfns.http.get("/keys", headers=headers)
    assert bad.status_code == 400
    assert _error(bad)["message"] == "request nonce is missing or invalid"
