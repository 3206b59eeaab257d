"""Ticket tokens: an independent JOSE library verifies them from the JWKS alone; forgeries fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .conftest import hours, iso

# RFC 9864 (2025) renames the JOSE alg "EdDSA" to "Ed25519"; joserfc warns. The issue fixes
# "EdDSA", which every scanner library understands today, so the warning is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864")


def jwks(client: Any) -> dict[str, Any]:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return dict(response.get_json())


def verify_with_jwks(token: str, key_set: dict[str, Any]) -> dict[str, Any]:
    """Verify as a third party would: joserfc, only the published keys, claims checked."""
    token_obj = jose_jwt.decode(token, KeySet.import_key_set(key_set), algorithms=["EdDSA", "ES256"])
    jose_jwt.JWTClaimsRegistry(exp={"essential": True}, nbf={"essential": True}).validate(token_obj.claims)
    return dict(token_obj.claims)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(
        base64.urlsafe_b64decode(pad(payload))
    )


def test_header_and_claims_are_short_and_explicit(ticket, event, client) -> None:
    header, claims = segments(ticket["token"])
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "qrsvc-ticket+jwt"
    assert header["kid"] in [k["kid"] for k in jwks(client)["keys"]]
    assert set(claims) == {"tid", "eid", "seat", "iat", "nbf", "exp", "jti"}
    assert (claims["tid"], claims["eid"], claims["seat"]) == (ticket["id"], event["id"], "A12")
    ends = datetime.fromisoformat(event["ends_at"])
    assert claims["exp"] == int((ends + timedelta(hours=6)).timestamp())


def test_jwks_is_public_cacheable_and_has_no_private_parts(client, ticket) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.headers["Cache-Control"] == "public, max-age=300"
    (key,) = response.get_json()["keys"]
    assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")
    # The kid is the RFC 7638 thumbprint, recomputable from the JWK alone.
    canonical = json.dumps({"crv": key["crv"], "kty": key["kty"], "x": key["x"]}, separators=(",", ":"))
    assert key["kid"] == b64(hashlib.sha256(canonical.encode()).digest())


def test_an_independent_library_verifies_tickets_across_rotation_until_retired(
    client, runner, event, issue, scan
) -> None:
    old = issue(event["id"])
    assert verify_with_jwks(old["token"], jwks(client))["tid"] == old["id"]
    old_kid = segments(old["token"])[0]["kid"]

    result = runner.invoke(args=["signing-keys", "rotate"])
    assert result.exit_code == 0, result.output
    new_kid = result.output.strip().splitlines()[-1]
    assert new_kid != old_kid
    new = issue(event["id"])
    assert segments(new["token"])[0]["kid"] == new_kid
    key_set = jwks(client)
    assert {k["kid"] for k in key_set["keys"]} == {old_kid, new_kid}
    assert verify_with_jwks(old["token"], key_set)["tid"] == old["id"]
    assert verify_with_jwks(new["token"], key_set)["tid"] == new["id"]

    listing = runner.invoke(args=["signing-keys", "list"]).output
    assert old_kid in listing and new_kid in listing and "PRIVATE" not in listing

    result = runner.invoke(args=["signing-keys", "retire", old_kid])
    assert result.exit_code == 0, result.output
    key_set = jwks(client)
    assert [k["kid"] for k in key_set["keys"]] == [new_kid]
    with pytest.raises(JoseError):
        verify_with_jwks(old["token"], key_set)
    assert verify_with_jwks(new["token"], key_set)["tid"] == new["id"]
    assert scan(old["token"]).get_json() == {"admit": False, "result": "invalid_signature"}
    assert scan(new["token"]).get_json()["result"] == "admitted"
    assert runner.invoke(args=["signing-keys", "retire", "nope"]).exit_code != 0


@pytest.mark.parametrize("app_config", [{"TICKETS_SIGNING_ALG": "ES256"}])
def test_es256_is_selectable(client, ticket, scan) -> None:
    header, _ = segments(ticket["token"])
    assert header["alg"] == "ES256"
    (key,) = jwks(client)["keys"]
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    assert verify_with_jwks(ticket["token"], jwks(client))["tid"] == ticket["id"]
    assert scan(ticket["token"]).get_json()["result"] == "admitted"


@pytest.fixture
def key_file(tmp_path) -> tuple[str, ed25519.Ed25519PrivateKey]:
    private = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "signing.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(path), private


def test_a_key_file_signs_instead_of_the_database(app, key_file, event, issue, client, runner) -> None:
    path, private = key_file
    app.config["TICKETS_SIGNING_KEY_FILE"] = path
    ticket = issue(event["id"])
    # Verifies with the file's public key directly: the file's key signed it.
    claims = pyjwt.decode(ticket["token"], private.public_key(), algorithms=["EdDSA"])
    assert claims["tid"] == ticket["id"]
    kid = segments(ticket["token"])[0]["kid"]
    assert kid in [k["kid"] for k in jwks(client)["keys"]]
    assert f"{kid}\tEdDSA" in runner.invoke(args=["signing-keys", "list"]).output
    assert "key file" in runner.invoke(args=["signing-keys", "list"]).output


# ------------------------------------------------------------------ forgeries


def _flip(token: str, segment: int) -> str:
    parts = token.split(".")
    middle = len(parts[segment]) // 2
    char = parts[segment][middle]
    parts[segment] = parts[segment][:middle] + ("A" if char != "A" else "B") + parts[segment][middle + 1 :]
    return ".".join(parts)


def test_one_changed_byte_is_an_invalid_signature(ticket, scan) -> None:
    for segment in (1, 2):
        assert scan(_flip(ticket["token"], segment)).get_json() == {
            "admit": False,
            "result": "invalid_signature",
        }
    assert scan(ticket["token"]).get_json()["result"] == "admitted"


def test_alg_none_is_refused(ticket, scan) -> None:
    header, claims = segments(ticket["token"])
    forged = pyjwt.encode(
        claims, None, algorithm="none", headers={"kid": header["kid"], "typ": header["typ"]}
    )
    assert pyjwt.get_unverified_header(forged)["alg"] == "none"
    assert scan(forged).get_json() == {"admit": False, "result": "invalid_signature"}
    # Also with an empty signature and a lower-case variant.
    unsigned = ".".join(forged.split(".")[:2]) + "."
    assert scan(unsigned).get_json()["result"] == "invalid_signature"


def test_hs256_signed_with_the_public_key_is_refused(client, ticket, scan) -> None:
    header, claims = segments(ticket["token"])
    (jwk,) = jwks(client)["keys"]
    public = pyjwt.PyJWK(jwk).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = base64.urlsafe_b64decode(jwk["x"] + "=")
    for secret in (pem, raw, json.dumps(jwk).encode()):
        head = b64(json.dumps({"alg": "HS256", "kid": header["kid"], "typ": header["typ"]}).encode())
        body = b64(json.dumps(claims).encode())
        signature = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
        assert scan(f"{head}.{body}.{signature}").get_json() == {
            "admit": False,
            "result": "invalid_signature",
        }
    assert scan(ticket["token"]).get_json()["result"] == "admitted"


def test_expired_and_not_yet_valid_tickets(make_event, issue, scan) -> None:
    past = make_event(starts_at=iso(hours(-72)), ends_at=iso(hours(-48)))
    future = make_event(starts_at=iso(hours(72)), ends_at=iso(hours(75)))
    assert scan(issue(past["id"])["token"]).get_json()["result"] == "expired"
    assert scan(issue(future["id"])["token"]).get_json()["result"] == "not_yet_valid"
    for response in (scan(issue(past["id"])["token"]), scan(issue(future["id"])["token"])):
        assert response.get_json()["admit"] is False


def test_another_events_ticket_is_wrong_event(make_event, issue, scan) -> None:
    here, there = make_event(name="Here"), make_event(name="There")
    ticket = issue(there["id"])
    body = scan(ticket["token"], event_id=here["id"]).get_json()
    assert (body["admit"], body["result"], body["ticket"]["id"]) == (False, "wrong_event", ticket["id"])
    assert scan(ticket["token"], event_id=there["id"]).get_json()["result"] == "admitted"


def test_a_genuine_token_for_no_ticket_is_unknown(app, event, scan) -> None:
    from integrations.tickets import tokens

    with app.app_context():
        token, _ = tokens.issue_token(
            tokens.current_signer(),
            ticket_id="tkt_doesnotexist0000",
            event_id=event["id"],
            seat=None,
            not_before=datetime.now(UTC) - timedelta(hours=1),
            expires=datetime.now(UTC) + timedelta(hours=1),
        )
    assert scan(token).get_json() == {"admit": False, "result": "unknown_ticket"}


@pytest.mark.parametrize("garbage", ["", "hello", "a.b.c", "x" * 300, "eyJhbGciOiJFZERTQSJ9.e30"])
def test_garbage_is_malformed_or_refused(scan, garbage) -> None:
    response = scan(garbage)
    if garbage == "":
        assert response.status_code == 400
        return
    assert response.status_code == 200
    assert response.get_json()["admit"] is False
    assert response.get_json()["result"] in ("malformed", "invalid_signature")


def test_a_token_of_another_type_is_malformed(app, ticket, scan) -> None:
    from integrations.tickets import tokens

    header, claims = segments(ticket["token"])
    with app.app_context():
        signer = tokens.current_signer()
        other = pyjwt.encode(claims, signer.key, algorithm="EdDSA", headers={"kid": signer.kid, "typ": "JWT"})
    assert scan(other).get_json() == {"admit": False, "result": "malformed"}
