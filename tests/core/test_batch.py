"""POST /v1/qr/batch through Flask's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from qrsvc.models import IdempotencyRecord, QrCode
from tests.conftest import decode


def batch(client: Any, auth: dict[str, str], headers: dict[str, str] | None = None, **body: Any) -> Any:
    return client.post("/v1/qr/batch", json=body, headers={**auth, **(headers or {})})


def count_rows(app: Any, model: Any) -> int:
    from qrsvc.extensions import db

    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_500_items_png_512_ec_h_all_decode_to_their_own_data(client, auth) -> None:
    urls = [f"https://crm.example.com/contact/{i:05d}?utm=spring" for i in range(500)]
    response = batch(
        client, auth, items=[{"data": url} for url in urls], format="png", size=512, error_correction="H"
    )
    assert response.status_code == 200, response.get_json()
    assert response.headers["X-QR-Cache-Hits"] == "0"
    result = response.get_json()
    assert (result["success"], result["count"], result["failed"]) == (True, 500, 0)
    assert [item["index"] for item in result["items"]] == list(range(500))
    for url, item in zip(urls, result["items"], strict=True):
        assert item["success"] is True and item["data"] == url
        assert item["image_url"] == f"http://localhost/v1/qr/{item['id']}.png"
        assert decode(base64.b64decode(item["image_base64"])) == [url]
    assert len({item["id"] for item in result["items"]}) == 500
    stored = client.get(f"/v1/qr/{result['items'][123]['id']}", headers=auth).get_json()
    assert (stored["data"], stored["error_correction"], stored["size"]) == (urls[123], "H", 512)


def test_items_override_the_defaults(client, auth, decode) -> None:
    items = [
        {"data": "default"},
        {"data": "as svg", "format": "svg", "size": 300},
        {"data": "low ec", "error_correction": "L", "foreground": "#1a1a6a"},
    ]
    result = batch(client, auth, items=items, size=256, error_correction="Q").get_json()
    first, second, third = result["items"]
    assert (first["format"], second["format"], third["format"]) == ("png", "svg", "png")
    meta = [client.get(f"/v1/qr/{item['id']}", headers=auth).get_json() for item in result["items"]]
    assert [(m["size"], m["error_correction"]) for m in meta] == [(256, "Q"), (300, "Q"), (256, "L")]
    assert meta[2]["foreground"] == "#1a1a6a"
    assert decode(base64.b64decode(second["image_base64"]), "svg") == ["as svg"]


def test_bad_items_fail_in_place_and_the_rest_succeed(client, auth, decode) -> None:
    items = [
        {"data": "good 0"},
        {"data": "bad colour", "foreground": "#12345"},
        {"data": "x" * 2000},  # fits no symbol at EC H
        {"data": "good 3", "size": 5000},
        "not an object",
        {"data": "typo", "error_corection": "H"},
        {"size": 300},
        {"data": "A" * 400, "size": 64},  # a version that cannot fit 64 px
        {"data": "pale", "foreground": "#eeeeee"},
        {"data": "good 9", "filename": 42},
        {"data": "good 10"},
    ]
    response = batch(client, auth, items=items, error_correction="H")
    assert response.status_code == 200
    result = response.get_json()
    assert (result["count"], result["failed"]) == (11, 9)
    errors = {
        item["index"]: (item["error"], item.get("field")) for item in result["items"] if not item["success"]
    }
    assert errors == {
        1: ("invalid_parameter", "foreground"),
        2: ("data_too_long", "data"),
        3: ("out_of_range", "size"),
        4: ("invalid_item", None),
        5: ("unknown_parameter", "error_corection"),
        6: ("missing_parameter", "data"),
        7: ("size_too_small", "size"),
        8: ("low_contrast", "foreground"),
        9: ("invalid_parameter", "filename"),
    }
    assert all(item["message"] for item in result["items"] if not item["success"])
    assert "1273 bytes" in result["items"][2]["message"]
    good = [item for item in result["items"] if item["success"]]
    assert [item["index"] for item in good] == [0, 10]
    for item in good:
        assert decode(base64.b64decode(item["image_base64"])) == [item["data"]]
    usage = client.get("/v1/account/usage", headers=auth).get_json()["usage"]
    assert usage["codes_today"] == 2


def test_url_form_leaves_out_the_images(client, auth, decode) -> None:
    result = batch(client, auth, items=[{"data": "one"}, {"data": "two"}], response="url").get_json()
    assert all("image_base64" not in item for item in result["items"])
    for item in result["items"]:
        assert decode(client.get(item["image_url"]).data) == [item["data"]]


def test_a_repeated_batch_is_served_from_the_render_cache(client, auth) -> None:
    items = [{"data": "one"}, {"data": "two"}, {"data": "three", "size": 200}]
    assert batch(client, auth, items=items).headers["X-QR-Cache-Hits"] == "0"
    again = batch(client, auth, items=[*items, {"data": "four"}])
    assert again.headers["X-QR-Cache-Hits"] == "3"


@pytest.mark.parametrize("how", ["accept", "body"])
def test_zip_holds_sanitised_unique_files_and_a_manifest(client, auth, decode, how) -> None:
    items = [
        {"data": "alice", "filename": "Alice Smith"},
        {"data": "bob", "filename": "../../etc/passwd"},
        {"data": "carol", "filename": "C:\\\\Windows\\\\carol.png"},
        {"data": "alice again", "filename": "alice smith"},
        {"data": "no name"},
        {"data": "broken", "foreground": "nope"},
        {"data": "device", "filename": "CON"},
        {"data": "vector", "filename": "vector.svg", "format": "svg"},
        {"data": "dots", "filename": "..."},
    ]
    if how == "accept":
        response = batch(client, auth, headers={"Accept": "application/zip"}, items=items)
    else:
        response = batch(client, auth, items=items, response="zip")
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = archive.namelist()
    assert names == [
        "Alice_Smith.png",
        "passwd.png",
        "carol.png",
        "alice_smith-2.png",
        "qr-0004.png",
        "qr-0006.png",
        "vector.svg",
        "qr-0008.png",
        "manifest.json",
    ]
    manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["count"], manifest["failed"]) == (9, 1)
    by_name = {entry["filename"]: entry for entry in manifest["items"] if entry["success"]}
    for name in names[:-1]:
        entry = by_name[name]
        fmt = name.rsplit(".", 1)[1]
        assert decode(archive.read(name), fmt) == [entry["data"]]
        assert entry["id"].startswith("qr_")
    failed = manifest["items"][5]
    assert failed == {
        "index": 5,
        "success": False,
        "error": "invalid_parameter",
        "message": failed["message"],
        "field": "foreground",
        "filename": None,
        "data": "broken",
    }


def test_json_wins_over_accept_zip_when_the_body_says_so(client, auth) -> None:
    zip_wanted = {"Accept": "application/zip"}
    response = batch(client, auth, headers=zip_wanted, items=[{"data": "x"}], response="json")
    assert response.mimetype == "application/json"


@pytest.mark.parametrize("app_config", [{"BATCH_MAX_ITEMS": 5}])
def test_more_items_than_the_limit_is_413_with_the_limit(client, auth) -> None:
    response = batch(client, auth, items=[{"data": str(i)} for i in range(6)])
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "batch_too_large" and body["field"] == "items"
    assert "at most 5 items" in body["message"]
    assert response.headers["X-Batch-Max-Items"] == "5"
    assert batch(client, auth, items=[{"data": str(i)} for i in range(5)]).status_code == 200


def test_a_batch_asking_for_too_many_pixels_is_413_before_any_rendering(client, auth) -> None:
    items = [{"data": f"big {i}"} for i in range(70)]
    response = batch(client, auth, items=items, size=4096, format="jpeg")
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "batch_too_large" and body["field"] == "items"
    assert "megapixels" in body["message"]
    usage = client.get("/v1/account/usage", headers=auth).get_json()["usage"]
    assert usage["codes_today"] == 0
    assert batch(client, auth, items=items[:10], size=4096, format="png").status_code == 200


@pytest.mark.parametrize("app_config", [{"MAX_BODY_BYTES": 2000}])
def test_a_body_over_the_size_limit_is_413(client, auth) -> None:
    response = batch(client, auth, items=[{"data": "x" * 100} for _ in range(30)])
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        ({"items": []}, 400, "empty_batch", "items"),
        ({}, 400, "missing_parameter", "items"),
        ({"items": {"data": "x"}}, 400, "invalid_parameter", "items"),
        ({"items": [{"data": "x"}], "data": "y"}, 400, "unknown_parameter", "data"),
        ({"items": [{"data": "x"}], "size": "big"}, 400, "invalid_parameter", "size"),
        ({"items": [{"data": "x"}], "colour": "red"}, 400, "unknown_parameter", "colour"),
        ({"items": [{"data": "x"}], "response": "pdf"}, 400, "invalid_parameter", "response"),
    ],
)
def test_whole_request_errors(client, auth, body, status, error, field) -> None:
    response = client.post("/v1/qr/batch", json=body, headers=auth)
    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert response.get_json()["field"] == field


def test_body_must_be_json_and_a_key_is_needed(client, auth) -> None:
    assert client.post("/v1/qr/batch", data="items", headers=auth).status_code == 415
    bad = client.post("/v1/qr/batch", data="{", headers={**auth, "Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_json"
    assert client.post("/v1/qr/batch", json={"items": [{"data": "x"}]}).status_code == 401
    assert client.get("/v1/qr/batch", headers=auth).status_code in (404, 405)


def test_one_batch_is_one_request_and_n_codes(client, auth) -> None:
    first = batch(client, auth, items=[{"data": f"n{i}"} for i in range(7)])
    second = batch(client, auth, items=[{"data": "more"}])
    remaining = int(first.headers["X-RateLimit-Remaining"])
    assert int(second.headers["X-RateLimit-Remaining"]) == remaining - 1
    usage = client.get("/v1/account/usage", headers=auth).get_json()["usage"]
    assert usage["requests_today"] == 3  # two batches and this call
    assert usage["codes_today"] == 8


def test_quota_is_checked_for_the_whole_batch(client, make_key, app) -> None:
    tiny = {"Authorization": f"Bearer {make_key('tiny', plan='tiny')}"}
    response = batch(client, tiny, items=[{"data": str(i)} for i in range(6)])
    assert response.status_code == 429
    assert response.get_json()["error"] == "quota_exceeded"
    assert count_rows(app, QrCode) == 0


def test_idempotency_key_retry_returns_the_first_result_without_new_records(client, auth, app) -> None:
    items = [{"data": f"https://example.com/idem/{i}"} for i in range(20)]
    key = {"Idempotency-Key": "4f0c9a4e-0000-4000-8000-000000000001"}
    first = batch(client, auth, headers=key, items=items, size=300)
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    assert count_rows(app, QrCode) == 20
    codes_before = client.get("/v1/account/usage", headers=auth).get_json()["usage"]["codes_today"]
    again = batch(client, auth, headers=key, items=items, size=300)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.data == first.data
    assert count_rows(app, QrCode) == 20
    assert count_rows(app, IdempotencyRecord) == 1
    usage = client.get("/v1/account/usage", headers=auth).get_json()["usage"]
    assert usage["codes_today"] == codes_before == 20
    # Without the key the same batch is new work (its records are shared, but counted again).
    plain = batch(client, auth, items=items, size=300)
    assert "Idempotent-Replayed" not in plain.headers
    assert client.get("/v1/account/usage", headers=auth).get_json()["usage"]["codes_today"] == 40


def test_idempotent_zip_is_replayed_byte_for_byte(client, auth, decode) -> None:
    key = {"Idempotency-Key": "zip-1"}
    first = batch(client, auth, headers=key, items=[{"data": "z1"}, {"data": "z2"}], response="zip")
    again = batch(client, auth, headers=key, items=[{"data": "z1"}, {"data": "z2"}], response="zip")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.mimetype == "application/zip" and again.data == first.data
    assert decode(zipfile.ZipFile(io.BytesIO(again.data)).read("qr-0001.png")) == ["z2"]


def test_idempotency_key_with_another_request_is_refused(client, auth) -> None:
    key = {"Idempotency-Key": "same-key"}
    assert batch(client, auth, headers=key, items=[{"data": "a"}]).status_code == 200
    other = batch(client, auth, headers=key, items=[{"data": "b"}])
    assert other.status_code == 422
    assert other.get_json()["error"] == "idempotency_key_reused"
    assert other.get_json()["field"] == "Idempotency-Key"
    as_zip = batch(client, auth, headers={**key, "Accept": "application/zip"}, items=[{"data": "a"}])
    assert as_zip.status_code == 422


def test_idempotency_keys_belong_to_one_api_key(client, auth, make_key) -> None:
    key = {"Idempotency-Key": "shared-name"}
    mine = batch(client, auth, headers=key, items=[{"data": "a"}]).get_json()
    other = {"Authorization": f"Bearer {make_key('other')}"}
    theirs = batch(client, other, headers=key, items=[{"data": "a"}])
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["items"][0]["id"] != mine["items"][0]["id"]


def test_idempotency_records_expire_after_24_hours(client, auth, app) -> None:
    from qrsvc import clock
    from qrsvc.extensions import db

    key = {"Idempotency-Key": "old-key"}
    batch(client, auth, headers=key, items=[{"data": "a"}])
    with app.app_context():
        db.session.execute(
            sa.update(IdempotencyRecord).values(created_at=clock.now() - timedelta(hours=24, minutes=1))
        )
        db.session.commit()
    again = batch(client, auth, headers=key, items=[{"data": "a"}])
    assert "Idempotent-Replayed" not in again.headers
    assert client.get("/v1/account/usage", headers=auth).get_json()["usage"]["codes_today"] == 2


@pytest.mark.parametrize("value", ["", "with space", "x" * 256, "ünïcode"])
def test_malformed_idempotency_key_is_400(client, auth, value) -> None:
    response = client.post(
        "/v1/qr/batch",
        json={"items": [{"data": "a"}]},
        headers={**auth, "Idempotency-Key": value.encode().decode("latin-1")},
    )
    assert response.status_code == 400
    assert response.get_json()["field"] == "Idempotency-Key"


def test_a_failed_batch_releases_its_idempotency_key(client, make_key, app) -> None:
    tiny = {"Authorization": f"Bearer {make_key('tiny', plan='tiny')}", "Idempotency-Key": "retry-me"}
    assert batch(client, tiny, items=[{"data": str(i)} for i in range(6)]).status_code == 429
    assert count_rows(app, IdempotencyRecord) == 0
    assert batch(client, tiny, items=[{"data": str(i)} for i in range(6)]).status_code == 429


@pytest.mark.parametrize("app_config", [{"BATCH_MAX_INLINE_BYTES": 2_000_000}])
def test_an_inline_batch_over_the_byte_limit_is_413_with_a_hint(client, auth, app, decode) -> None:
    items = [{"data": f"{i:04d}" + "x" * 2800} for i in range(8)]  # ~0.7 MB of JPEG each at 1024 px
    options = {"format": "jpeg", "size": 1024, "error_correction": "L"}
    response = batch(client, auth, items=items, **options)
    assert response.status_code == 413
    body = response.get_json()
    assert (body["error"], body["field"]) == ("response_too_large", "response")
    assert '"response": "url"' in body["message"] and '"zip"' in body["message"]
    assert count_rows(app, QrCode) == 0
    assert client.get("/v1/account/usage", headers=auth).get_json()["usage"]["codes_today"] == 0
    as_urls = batch(client, auth, items=items, response="url", **options)
    assert as_urls.status_code == 200 and as_urls.get_json()["failed"] == 0
    as_zip = batch(client, auth, items=items, response="zip", **options)
    assert as_zip.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(as_zip.data))
    assert decode(archive.read("qr-0007.jpeg"), "jpeg") == [items[7]["data"]]
    assert batch(client, auth, items=items[:2], **options).status_code == 200  # within the limit


def _record_bytes(app: Any) -> int:
    """Bytes of everything the idempotency table holds (every column of every row)."""
    from qrsvc.extensions import db

    with app.app_context():
        rows = db.session.execute(sa.select(IdempotencyRecord.__table__)).all()
    return sum(len(value if isinstance(value, bytes) else str(value)) for row in rows for value in row)


@pytest.mark.parametrize("form", ["zip", "url"])
def test_idempotent_replay_of_a_big_batch_keeps_ids_and_holds_no_image_bytes(
    client, auth, app, decode, form
) -> None:
    items = [{"data": f"https://example.com/big/{i:04d}", "filename": f"n{i}"} for i in range(300)]
    items[7] = {"data": "bad", "foreground": "#eeeeee"}
    key = {"Idempotency-Key": f"big-{form}"}
    first = batch(client, auth, headers=key, items=items, size=1024, format="jpeg", response=form)
    assert first.status_code == 200
    again = batch(client, auth, headers=key, items=items, size=1024, format="jpeg", response=form)
    assert again.headers["Idempotent-Replayed"] == "true"
    if form == "zip":
        assert again.data == first.data  # re-rendered from the stored codes, byte for byte
        archive = zipfile.ZipFile(io.BytesIO(again.data))
        entries = json.loads(archive.read("manifest.json"))["items"]
        assert decode(archive.read("n299.jpeg"), "jpeg") == [items[299]["data"]]
    else:
        assert again.get_json() == first.get_json()
        entries = again.get_json()["items"]
    assert len({entry["id"] for entry in entries if entry["success"]}) == 299
    assert entries[7]["error"] == "low_contrast"
    assert count_rows(app, QrCode) == 299
    assert client.get("/v1/account/usage", headers=auth).get_json()["usage"]["codes_today"] == 299
    # Ids and per-item outcomes only: well under 100 bytes an item (the ZIP is megabytes).
    assert _record_bytes(app) < 100 * len(items)


def test_a_claim_whose_lease_ran_out_is_taken_over(client, auth, app, api_key) -> None:
    from qrsvc import clock, idempotency
    from qrsvc.batch import parse_batch
    from qrsvc.extensions import db
    from qrsvc.keys import find_key
    from qrsvc.options import Bounds

    items = [{"data": "lease 1"}, {"data": "lease 2"}]
    key = "dead-worker"
    with app.test_request_context():
        owner = find_key(api_key)
        wanted = parse_batch({"items": items}, Bounds(), 1000)
        claimed = idempotency.claim(owner, key, wanted.fingerprint)
        assert isinstance(claimed, idempotency.Claim)  # a worker took it ... and died
        db.session.execute(sa.update(IdempotencyRecord).values(expires_at=clock.now() - timedelta(seconds=1)))
        db.session.commit()
    retry = batch(client, auth, headers={"Idempotency-Key": key}, items=items)
    assert retry.status_code == 200, retry.get_json()
    assert "Idempotent-Replayed" not in retry.headers
    assert retry.get_json()["failed"] == 0
    again = batch(client, auth, headers={"Idempotency-Key": key}, items=items)
    assert again.headers["Idempotent-Replayed"] == "true"
    again.close()  # its body is never read: close the spooled file now, not whenever GC finds it
    assert client.get("/v1/account/usage", headers=auth).get_json()["usage"]["codes_today"] == 2
