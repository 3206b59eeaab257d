"""Dynamic codes through the API: the printed short URL, /r/<CODE>, PATCH, and hostile targets."""

from __future__ import annotations

import base64
import re
import zipfile
from datetime import timedelta
from io import BytesIO
from typing import Any

import pytest

SHORT_URL = re.compile(r"HTTP://LOCALHOST/R/([A-Z2-7]{13})")
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def make(
    client: Any, auth: dict[str, str], target: str = "https://shop.example.com/spring?utm=qr", **body: Any
) -> Any:
    response = client.post(
        "/v1/qr/generate", json={"data": target, "dynamic": True, "response": "json", **body}, headers=auth
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def path_of(code: dict[str, Any]) -> str:
    return "/R/" + code["dynamic"]["short_url"].rsplit("/", 1)[1]


def scans_of(client: Any, auth: dict[str, str], code: dict[str, Any]) -> dict[str, Any]:
    response = client.get(f"/v1/qr/{code['id']}", headers=auth)
    assert response.status_code == 200
    return response.get_json()["dynamic"]["scans"]


def test_a_dynamic_code_prints_its_short_url_and_keeps_the_target_as_data(client, auth, decode) -> None:
    code = make(client, auth)
    short_url = code["dynamic"]["short_url"]
    assert SHORT_URL.fullmatch(short_url), short_url
    assert decode(base64.b64decode(code["image_base64"])) == [short_url]
    assert decode(client.get(code["image_url"]).data) == [short_url]
    assert code["data"] == code["dynamic"]["target"] == "https://shop.example.com/spring?utm=qr"
    assert code["dynamic"]["disabled"] is False and code["dynamic"]["expires_at"] is None
    listed = client.get("/v1/qr", headers=auth).get_json()["items"]
    assert [(item["id"], item["data"]) for item in listed] == [(code["id"], code["data"])]


def test_every_dynamic_code_is_a_new_code(client, auth) -> None:
    first, second = make(client, auth), make(client, auth)
    assert first["id"] != second["id"]
    assert first["dynamic"]["short_url"] != second["dynamic"]["short_url"]


@pytest.mark.parametrize(
    ("base", "printed"),
    [
        ("https://qr.example.com", "HTTPS://QR.EXAMPLE.COM/R/"),
        ("https://qr.example.com/", "HTTPS://QR.EXAMPLE.COM/R/"),
        ("http://Qr.Example.com:8080/Go", "HTTP://QR.EXAMPLE.COM:8080/Go/R/"),
    ],
)
def test_the_base_url_is_upper_cased_but_not_its_path(app, client, auth, decode, base, printed) -> None:
    app.config["PUBLIC_BASE_URL"] = base
    code = make(client, auth, error_correction="M")
    short_url = code["dynamic"]["short_url"]
    assert short_url.startswith(printed) and len(short_url) == len(printed) + 13
    assert decode(base64.b64decode(code["image_base64"])) == [short_url]
    if base.startswith("https://qr.example.com"):
        assert code["version"] == 2  # 38 alphanumeric characters: 25 x 25 modules at EC M


def test_generate_by_query_string_accepts_dynamic(client, auth, decode) -> None:
    response = client.get(
        "/v1/qr/generate", query_string={"data": "https://example.com/q", "dynamic": "true"}, headers=auth
    )
    assert response.status_code == 200
    code = client.get(f"/v1/qr/{response.headers['X-QR-Id']}", headers=auth).get_json()
    assert code["data"] == "https://example.com/q"
    assert decode(response.data) == [code["dynamic"]["short_url"]]


def test_a_scan_redirects_to_the_target_and_is_counted(client, auth) -> None:
    code = make(client, auth)
    assert scans_of(client, auth, code) == {"total": 0, "unique": 0, "last_at": None}
    response = client.get(path_of(code), headers={"User-Agent": IPHONE})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example.com/spring?utm=qr"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    counted = scans_of(client, auth, code)
    assert (counted["total"], counted["unique"]) == (1, 1)
    assert counted["last_at"].endswith("Z")


def test_the_short_code_is_found_in_any_case(client, auth) -> None:
    code = make(client, auth)
    short = path_of(code)[3:]
    for path in (f"/R/{short}", f"/r/{short}", f"/r/{short.lower()}", f"/R/{short.capitalize()}"):
        assert client.get(path).status_code == 302, path
    assert scans_of(client, auth, code)["total"] == 4


def test_a_head_request_redirects_without_counting(client, auth) -> None:
    code = make(client, auth)
    assert client.head(path_of(code)).status_code == 302
    assert scans_of(client, auth, code)["total"] == 0


@pytest.mark.parametrize("path", ["/r/AAAAAAAAAAAAA", "/r/short", "/R/" + "A" * 5000, "/r/AAAAAAAAAAAA1"])
def test_an_unknown_code_is_a_small_html_404_page(client, path) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert b"leads nowhere" in response.data
    assert "Location" not in response.headers


def test_disabled_and_expired_codes_are_410_pages_and_not_counted(client, auth) -> None:
    from qrsvc import clock

    code = make(client, auth)
    url = f"/v1/qr/{code['id']}"
    assert client.patch(url, json={"disabled": True}, headers=auth).get_json()["dynamic"]["disabled"] is True
    gone = client.get(path_of(code))
    assert (gone.status_code, gone.mimetype) == (410, "text/html")
    assert b"no longer active" in gone.data
    assert client.patch(url, json={"disabled": False}, headers=auth).status_code == 200
    assert client.get(path_of(code)).status_code == 302
    past = clock.isoformat(clock.now() - timedelta(minutes=1))
    changed = client.patch(url, json={"expires_at": past}, headers=auth).get_json()
    assert changed["dynamic"]["expires_at"] == past
    assert client.get(path_of(code)).status_code == 410
    future = (clock.now() + timedelta(days=1)).isoformat()  # an offset other than Z
    assert client.patch(url, json={"expires_at": future}, headers=auth).status_code == 200
    assert client.get(path_of(code)).status_code == 302
    assert (
        client.patch(url, json={"expires_at": None}, headers=auth).get_json()["dynamic"]["expires_at"] is None
    )
    assert scans_of(client, auth, code)["total"] == 2


def test_retargeting_keeps_the_image_and_moves_the_redirect_at_once(client, auth, decode) -> None:
    code = make(client, auth)
    before = client.get(code["image_url"])
    assert client.get(path_of(code)).headers["Location"] == code["data"]
    changed = client.patch(f"/v1/qr/{code['id']}", json={"target": "https://new.example.org/x"}, headers=auth)
    assert changed.status_code == 200
    body = changed.get_json()
    assert body["id"] == code["id"]
    assert body["data"] == body["dynamic"]["target"] == "https://new.example.org/x"
    assert body["dynamic"]["short_url"] == code["dynamic"]["short_url"]
    assert body["dynamic"]["scans"]["total"] == 1
    after = client.get(code["image_url"])
    assert after.data == before.data and after.headers["ETag"] == before.headers["ETag"]
    assert decode(after.data) == [code["dynamic"]["short_url"]]
    assert client.get(path_of(code)).headers["Location"] == "https://new.example.org/x"


def test_a_non_ascii_target_is_sent_as_a_uri(client, auth) -> None:
    code = make(client, auth, target="https://bücher.example/straße?q=ü")
    assert code["data"] == "https://bücher.example/straße?q=ü"
    location = client.get(path_of(code)).headers["Location"]
    assert location == "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC"


HOSTILE_TARGETS = [
    "javascript:alert(document.cookie)",
    "JavaScript://example.com/%0Aalert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "ftp://example.com/file",
    "//example.com/no-scheme",
    "example.com",
    "http://example.com/\r\nSet-Cookie: session=stolen",
    "http://example.com/\nLocation: https://evil.example",
    "https://example.com/\x1b[31m",
    "https://example.com/\u0085next",
    "https://exa mple.com/",
    "http:///no-host",
    "https://:443/",
    "https://example.com:99999/",
    "https://bank.example.com@evil.example/",
    "https://example.com/" + "a" * 2030,
]


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_hostile_targets_are_refused_on_generate_batch_and_patch(client, auth, target) -> None:
    response = client.post("/v1/qr/generate", json={"data": target, "dynamic": True}, headers=auth)
    assert response.status_code == 422, target
    assert response.get_json()["error"] == "invalid_target"
    assert response.get_json()["field"] == "data"
    batch = client.post(
        "/v1/qr/batch", json={"items": [{"data": target}], "dynamic": True, "response": "url"}, headers=auth
    ).get_json()
    assert (batch["failed"], batch["items"][0]["error"]) == (1, "invalid_target")
    code = make(client, auth)
    changed = client.patch(f"/v1/qr/{code['id']}", json={"target": target}, headers=auth)
    assert changed.status_code == 422
    assert (changed.get_json()["error"], changed.get_json()["field"]) == ("invalid_target", "target")
    assert client.get(path_of(code)).headers["Location"] == code["data"]
    # Only the one good code of each round was stored.
    assert len(client.get("/v1/qr", headers=auth).get_json()["items"]) == 1


def test_a_target_of_2048_characters_is_accepted(client, auth) -> None:
    target = "https://example.com/" + "a" * (2048 - 20)
    assert len(target) == 2048
    code = make(client, auth, target=target)
    assert client.get(path_of(code)).headers["Location"] == target


def test_a_nul_in_a_target_is_a_400(client, auth) -> None:
    response = client.post(
        "/v1/qr/generate", json={"data": "https://a.example/\x00", "dynamic": True}, headers=auth
    )
    assert response.status_code == 400
    code = make(client, auth)
    assert (
        client.patch(
            f"/v1/qr/{code['id']}", json={"target": "https://a.example/\x00"}, headers=auth
        ).status_code
        == 400
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": "https://b.example"}, "data"),
        ({"disabled": "yes"}, "disabled"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"target": 42}, "target"),
    ],
)
def test_patch_refuses_other_fields_and_bad_values(client, auth, body, field) -> None:
    code = make(client, auth)
    response = client.patch(f"/v1/qr/{code['id']}", json=body, headers=auth)
    assert response.status_code == 400
    assert response.get_json()["field"] == field


def test_another_keys_code_is_not_found(client, auth, make_key) -> None:
    code = make(client, auth)
    other = {"Authorization": f"Bearer {make_key('other')}"}
    for method, url, body in (
        ("patch", f"/v1/qr/{code['id']}", {"target": "https://evil.example/"}),
        ("get", f"/v1/qr/{code['id']}", None),
        ("get", f"/v1/qr/{code['id']}/scans", None),
    ):
        response = getattr(client, method)(url, json=body, headers=other)
        assert response.status_code == 404, (method, url)
    assert client.get(path_of(code)).headers["Location"] == code["data"]


def test_a_static_code_has_nothing_to_change_or_count(client, auth) -> None:
    static = client.post(
        "/v1/qr/generate", json={"data": "hello", "response": "json"}, headers=auth
    ).get_json()
    assert "dynamic" not in static
    changed = client.patch(f"/v1/qr/{static['id']}", json={"target": "https://a.example/"}, headers=auth)
    assert (changed.status_code, changed.get_json()["error"]) == (422, "not_dynamic")
    series = client.get(f"/v1/qr/{static['id']}/scans", headers=auth)
    assert (series.status_code, series.get_json()["error"]) == (422, "not_dynamic")
    assert "dynamic" not in client.get(f"/v1/qr/{static['id']}", headers=auth).get_json()


def test_patch_needs_the_write_scope(client, auth, make_key) -> None:
    code = make(client, auth)
    reader = {"Authorization": f"Bearer {make_key('reader', scopes=('qr:read',))}"}
    assert client.patch(f"/v1/qr/{code['id']}", json={"disabled": True}, headers=reader).status_code == 403


def test_batch_items_can_be_dynamic_each_or_all(client, auth, decode) -> None:
    body = {
        "items": [
            {"data": "https://a.example/1", "dynamic": True},
            {"data": "plain text"},
            {"data": "https://a.example/3", "dynamic": True, "filename": "third"},
        ],
        "response": "zip",
    }
    response = client.post("/v1/qr/batch", json=body, headers=auth)
    assert response.status_code == 200
    archive = zipfile.ZipFile(BytesIO(response.data))
    manifest = {
        item["index"]: item for item in __import__("json").loads(archive.read("manifest.json"))["items"]
    }
    for index in (0, 2):
        item = manifest[index]
        assert item["data"] == body["items"][index]["data"]
        assert decode(archive.read(item["filename"])) == [item["dynamic"]["short_url"]]
        assert client.get(path_of(item)).headers["Location"] == item["data"]
    assert "dynamic" not in manifest[1]
    assert decode(archive.read(manifest[1]["filename"])) == ["plain text"]
    everything = client.post(
        "/v1/qr/batch",
        json={
            "items": [{"data": f"https://b.example/{i}"} for i in range(3)],
            "dynamic": True,
            "response": "url",
        },
        headers=auth,
    ).get_json()
    assert len({item["dynamic"]["short_url"] for item in everything["items"]}) == 3


def test_a_replayed_batch_draws_the_same_short_urls(client, auth, decode) -> None:
    body = {"items": [{"data": "https://c.example/1"}], "dynamic": True}
    headers = {**auth, "Idempotency-Key": "dyn-1"}
    first = client.post("/v1/qr/batch", json=body, headers=headers).get_json()["items"][0]
    again = client.post("/v1/qr/batch", json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    replayed = again.get_json()["items"][0]
    assert replayed["dynamic"] == first["dynamic"]
    assert decode(base64.b64decode(replayed["image_base64"])) == [first["dynamic"]["short_url"]]


def test_deleting_a_code_ends_its_redirect_and_its_scans(app, client, auth) -> None:
    import sqlalchemy as sa

    from qrsvc.extensions import db
    from qrsvc.models import DynamicCode, Scan

    code, kept = make(client, auth), make(client, auth)
    client.get(path_of(code))
    client.get(path_of(kept))
    assert client.delete(f"/v1/qr/{code['id']}", headers=auth).status_code == 200
    assert client.get(path_of(code)).status_code == 404
    assert scans_of(client, auth, kept)["total"] == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Scan)) == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DynamicCode)) == 1


def test_a_drawn_short_code_already_taken_is_drawn_again(app, client, auth) -> None:
    from qrsvc import dynamic

    taken = path_of(make(client, auth))[3:]
    draws = iter([taken, taken, "ABCDEFGHIJKLM"])
    with app.test_request_context():
        (planned,) = dynamic.plan_codes(
            ["https://a.example/"], "https://qr.example.com", draw=lambda: next(draws)
        )
    assert planned.short_url == "HTTPS://QR.EXAMPLE.COM/R/ABCDEFGHIJKLM"


def test_the_unique_constraint_is_the_last_word_on_short_codes(app, client, auth) -> None:
    import sqlalchemy as sa

    from qrsvc.extensions import db
    from qrsvc.models import DynamicCode

    code, other = make(client, auth), make(client, auth)
    with app.app_context():
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(
                sa.update(DynamicCode)
                .where(DynamicCode.code_id == other["id"])
                .values(short_code=path_of(code)[3:])
            )
        db.session.rollback()


@pytest.mark.parametrize("app_config", [{"REDIRECT_RATE_LIMIT": "3/minute"}])
def test_redirects_are_limited_per_address_with_a_small_429_page(client, auth) -> None:
    code = make(client, auth)
    assert [client.get(path_of(code)).status_code for _ in range(3)] == [302] * 3
    refused = client.get(path_of(code))
    assert (refused.status_code, refused.mimetype) == (429, "text/html")
    assert b"Too many scans" in refused.data
    assert "Location" not in refused.headers
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["Cache-Control"] == "no-store"
    # Guessing codes is refused alike: unknown ones count against the same limit.
    assert client.get("/r/AAAAAAAAAAAAA").status_code == 429
    assert client.get(path_of(code).lower()).status_code == 429  # /r/ and /R/ are one limit
    assert scans_of(client, auth, code)["total"] == 3
    # Another address is not held back, and the API's own limit is a separate one.
    other = client.get(path_of(code), environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 302
    assert client.get("/v1/qr").status_code == 401
    text = client.get("/metrics").get_data(as_text=True)
    assert "qrsvc_rate_limit_refusals_total" in text
    from prometheus_client.parser import text_string_to_metric_families

    refusals = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "qrsvc_rate_limit_refusals_total"
        and sample.labels["route"].endswith("<short_code>")
    )
    assert refusals == 3


def test_the_redirect_limit_keeps_no_address(app, client, auth) -> None:
    """The limiter's storage counts redirects under a salted hash, as the scan statistics do."""
    import sqlite3
    from pathlib import Path

    code = make(client, auth)
    assert client.get(path_of(code), environ_base={"REMOTE_ADDR": "198.51.100.23"}).status_code == 302
    path = Path(app.instance_path) / "ratelimits.sqlite3"  # the default storage
    assert app.config["RATELIMIT_STORAGE_URL"].endswith(str(path))
    with sqlite3.connect(path) as connection:
        keys = [row[0] for row in connection.execute("SELECT key FROM window_entries")]
    redirect_keys = [key for key in keys if "redirects" in key]
    assert redirect_keys, keys  # the redirect was counted here
    assert not [key for key in keys if "198.51.100.23" in key]
