"""Scan analytics: unique visitors without IP addresses, daily salts, series, and what a scan keeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.core.test_dynamic import IPHONE, make, path_of, scans_of

ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
CLIENT_IP = "203.0.113.77"


def scan(client: Any, code: dict[str, Any], ip: str = CLIENT_IP, agent: str = IPHONE, **headers: str) -> None:
    response = client.get(
        path_of(code), headers={"User-Agent": agent, **headers}, environ_base={"REMOTE_ADDR": ip}
    )
    assert response.status_code == 302


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Set the one clock (`qrsvc.clock.now`) to a moment."""
    from qrsvc import clock

    def freeze(moment: datetime) -> None:
        monkeypatch.setattr(clock, "now", lambda: moment)

    return freeze


def test_unique_counts_visitors_by_address_and_user_agent(client, auth) -> None:
    code = make(client, auth)
    scan(client, code)
    scan(client, code)  # the same person again
    scan(client, code, agent=ANDROID)  # another device behind the same address
    scan(client, code, ip="198.51.100.9")  # another address
    counts = scans_of(client, auth, code)
    assert (counts["total"], counts["unique"]) == (4, 3)


def test_one_person_is_a_different_visitor_on_each_code(app, client, auth) -> None:
    from qrsvc.extensions import db
    from qrsvc.models import Scan

    first, second = make(client, auth), make(client, auth)
    scan(client, first)
    scan(client, second)
    scans_of(client, auth, first)
    with app.app_context():
        visitors = db.session.scalars(sa.select(Scan.visitor)).all()
    assert len(set(visitors)) == 2


def test_the_salt_rotates_daily_and_the_worker_deletes_past_salts(app, client, auth, frozen, runner) -> None:
    from qrsvc.extensions import db
    from qrsvc.models import ScanSalt

    day_one = datetime(2027, 3, 1, 23, 59, tzinfo=UTC)
    frozen(day_one)
    code = make(client, auth)
    scan(client, code)
    scan(client, code)
    frozen(day_one + timedelta(minutes=2))  # past midnight: the same person, a new day
    scan(client, code)
    counts = scans_of(client, auth, code)
    assert (counts["total"], counts["unique"]) == (3, 2)
    assert counts["last_at"] == "2027-03-02T00:01:00Z"
    series = client.get(
        f"/v1/qr/{code['id']}/scans", query_string={"from": "2027-03-01", "to": "2027-03-02"}, headers=auth
    ).get_json()["items"]
    assert series == [
        {"day": "2027-03-01", "total": 2, "unique": 1},
        {"day": "2027-03-02", "total": 1, "unique": 1},
    ]
    with app.app_context():
        assert len(db.session.scalars(sa.select(ScanSalt.day)).all()) == 2
        db.session.remove()
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalars(sa.select(ScanSalt.day)).all() == [day_one.date() + timedelta(days=1)]
    # Past hashes stay countable; today's salt goes on being used.
    scan(client, code)
    assert scans_of(client, auth, code)["unique"] == 2


def test_no_table_holds_the_client_address(app, client, auth) -> None:
    """Every table's every value after traffic from one address: the address is nowhere."""
    from qrsvc.extensions import db

    code = make(client, auth)
    for agent in (IPHONE, ANDROID, "", "curl/8.5.0"):
        scan(client, code, agent=agent, Referer=f"https://{CLIENT_IP}/?ip={CLIENT_IP}")
    client.get("/r/AAAAAAAAAAAAA", environ_base={"REMOTE_ADDR": CLIENT_IP})
    client.patch(f"/v1/qr/{code['id']}", json={"disabled": True}, headers=auth)
    client.get(path_of(code), environ_base={"REMOTE_ADDR": CLIENT_IP})
    assert scans_of(client, auth, code)["total"] == 4
    dumped = []
    with app.app_context():
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(sa.select(table)):
                dumped.extend(str(value) for value in row)
    text = "\n".join(dumped)
    assert "ip=" not in text
    for form in (CLIENT_IP, CLIENT_IP.replace(".", ""), "cb00714d"):  # dotted, digits, hex
        assert form not in text


def test_a_scan_keeps_browser_device_and_only_the_referrers_host(client, auth) -> None:
    code = make(client, auth)
    scan(client, code, Referer="https://News.Example.org/story?email=ada%40example.com#top")
    scan(client, code, agent=ANDROID, Referer="android-app://com.google.android.gm/")
    scan(client, code, agent="facebookexternalhit/1.1")

    def grouped(group: str) -> list[dict[str, Any]]:
        response = client.get(f"/v1/qr/{code['id']}/scans", query_string={"group": group}, headers=auth)
        assert response.status_code == 200
        assert response.get_json()["group"] == group
        return response.get_json()["items"]

    assert grouped("referrer") == [
        {"referrer": None, "total": 2, "unique": 2},
        {"referrer": "news.example.org", "total": 1, "unique": 1},
    ]
    assert {item["device"]: item["total"] for item in grouped("device")} == {"mobile": 2, "bot": 1}
    assert {item["browser"]: item["total"] for item in grouped("browser")} == {
        "Safari": 1,
        "Chrome": 1,
        "Bot": 1,
    }
    assert grouped("country") == [{"country": None, "total": 3, "unique": 3}]


@pytest.mark.parametrize(
    ("app_config", "sent", "kept"),
    [
        ({}, "DE", None),
        ({"TRUSTED_COUNTRY_HEADER": "CF-IPCountry"}, "de", "DE"),
        ({"TRUSTED_COUNTRY_HEADER": "CF-IPCountry"}, "XX", None),
        ({"TRUSTED_COUNTRY_HEADER": "CF-IPCountry"}, "Germany", None),
    ],
)
def test_a_country_is_kept_only_from_a_trusted_header(client, auth, sent, kept) -> None:
    code = make(client, auth)
    scan(client, code, **{"CF-IPCountry": sent})
    items = client.get(f"/v1/qr/{code['id']}/scans?group=country", headers=auth).get_json()["items"]
    assert items == [{"country": kept, "total": 1, "unique": 1}]


def test_the_day_series_has_every_day_of_the_range(client, auth, frozen) -> None:
    now = datetime(2027, 5, 10, 12, 0, tzinfo=UTC)
    frozen(now - timedelta(days=3))
    code = make(client, auth)
    scan(client, code)
    frozen(now)
    scan(client, code)
    scan(client, code, ip="198.51.100.1")
    body = client.get(f"/v1/qr/{code['id']}/scans", headers=auth).get_json()
    assert (body["from"], body["to"]) == ("2027-04-11T00:00:00Z", "2027-05-11T00:00:00Z")
    days = body["items"]
    assert len(days) == 30 and days[0]["day"] == "2027-04-11" and days[-1]["day"] == "2027-05-10"
    assert {d["day"]: (d["total"], d["unique"]) for d in days if d["total"]} == {
        "2027-05-07": (1, 1),
        "2027-05-10": (2, 2),
    }
    hours = client.get(
        f"/v1/qr/{code['id']}/scans",
        query_string={"from": "2027-05-10T11:00:00Z", "to": "2027-05-10T13:00:00+00:00"},
        headers=auth,
    ).get_json()["items"]
    assert hours == [{"day": "2027-05-10", "total": 2, "unique": 2}]


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"from": "2026-01-01", "to": "2027-06-01"}, 400, "from"),
        ({"from": "2027-02-01", "to": "2027-01-01"}, 400, "from"),
        ({"from": "yesterday"}, 400, "from"),
        ({"to": "2027-01-01T00:00:00"}, 400, "to"),
        ({"group": "hour"}, 400, "group"),
        ({"colour": "red"}, 400, "colour"),
    ],
)
def test_the_series_range_and_group_are_checked(client, auth, query, status, field) -> None:
    code = make(client, auth)
    response = client.get(f"/v1/qr/{code['id']}/scans", query_string=query, headers=auth)
    assert response.status_code == status
    assert response.get_json()["field"] == field


@pytest.mark.parametrize(
    ("agent", "browser", "device"),
    [
        (IPHONE, "Safari", "mobile"),
        (ANDROID, "Chrome", "mobile"),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            "Safari",
            "tablet",
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
            "Chrome",
            "tablet",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0 Mobile Safari/537.36",
            "Samsung Internet",
            "mobile",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0",
            "Edge",
            "desktop",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
            "Firefox",
            "desktop",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0 Mobile/15E148 Safari/604.1",
            "Chrome",
            "mobile",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21F90 Instagram 337.0",
            "Instagram",
            "mobile",
        ),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Bot", "bot"),
        ("curl/8.5.0", "Bot", "bot"),
        ("", "Other", "other"),
        ("\x00" * 10000, "Other", "other"),
    ],
)
def test_user_agents_are_classified_coarsely(agent, browser, device) -> None:
    from qrsvc.useragents import classify

    found = classify(agent)
    assert (found.browser, found.device) == (browser, device)


def test_the_redirect_keeps_no_session_and_sets_no_cookie(client, auth) -> None:
    code = make(client, auth)
    response = client.get(path_of(code))
    assert "Set-Cookie" not in response.headers


def test_services_make_many_dynamic_codes_in_one_batch_and_count_them_together(
    app, client, auth, decode
) -> None:
    """What the CRM calls: one code per contact through the render pool, then campaign counts."""
    import sqlalchemy as sa

    from qrsvc import dynamic
    from qrsvc.extensions import db
    from qrsvc.keys import find_key
    from qrsvc.options import QrOptions
    from qrsvc.scan_counts import scan_stats

    targets = [f"https://landing.example.com/spring?utm_campaign=spring&qrc={n:03d}" for n in range(70)]
    with app.test_request_context(base_url="https://crm.example.com"):
        owner = find_key(auth["Authorization"].split()[1])
        assert owner is not None
        made = dynamic.make_dynamic_codes(owner, targets, QrOptions(data="", error_correction="M"))
        db.session.commit()
        assert [code.data for code in made] == targets
        short_urls = [code.dynamic.short_url for code in made if code.dynamic is not None]
        assert len(set(short_urls)) == 70
        assert all(url.startswith("HTTPS://CRM.EXAMPLE.COM/R/") for url in short_urls)
        ids = [code.id for code in made]
    for code in made[:2]:
        assert decode(client.get(f"/v1/qr/{code.id}.png").data) == [code.dynamic.short_url]
    first, second = ({"dynamic": {"short_url": code.dynamic.short_url}} for code in made[:2])
    scan(client, first)
    scan(client, first)
    scan(client, first, ip="198.51.100.2")
    scan(client, second)
    with app.app_context():
        stats = scan_stats(ids)
        assert (stats.total, stats.unique) == (4, 3)
        assert (stats.per_code[ids[0]].total, stats.per_code[ids[0]].unique) == (3, 2)
        assert stats.per_code[ids[2]].total == 0 and len(stats.per_code) == 70
        assert [row for row in stats.per_day if row["total"]] == [
            {"day": stats.per_day[-1]["day"], "total": 4, "unique": 3}
        ]
        assert len(stats.per_day) == 30
        assert db.session.scalar(sa.select(sa.func.count()).select_from(sa.table("dynamic_codes"))) == 70


def test_a_redirect_is_one_indexed_query(app, client, auth) -> None:
    """The day's salt once, then each redirect reads one row by the unique index and writes nothing."""
    from qrsvc.extensions import db

    code = make(client, auth)
    scan(client, code)  # the day's salt is made and kept
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        scan(client, code)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    assert "dynamic_codes" in statements[0] and "short_code" in statements[0]
    with app.app_context(), db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            plan = " ".join(
                str(row)
                for row in connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statements[0], (path_of(code)[3:],)
                )
            )
            assert "USING INDEX" in plan and "SCAN dynamic_codes" not in plan, plan
        else:
            connection.exec_driver_sql("SET enable_seqscan = off")  # an empty table would be scanned
            explained = connection.exec_driver_sql(
                "EXPLAIN " + statements[0], {"short_code": path_of(code)[3:]}
            )
            plan = " ".join(row[0] for row in explained)
            assert "Index Scan" in plan and "short_code" in plan, plan


def test_unwritten_scans_wait_for_the_database_and_are_bounded(tmp_path) -> None:
    """A batch that fails stays for the next try; past the bound the oldest are dropped."""
    from datetime import date

    from qrsvc.extensions import db
    from qrsvc.models import ApiKey, DynamicCode, QrCode, Scan
    from qrsvc.scan_writer import ScanWriter

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'late.sqlite3'}")
    writer = ScanWriter(engine, interval=3600, batch_rows=1000, max_pending=3)
    moment = datetime(2027, 1, 1, tzinfo=UTC)

    def row(n: int) -> dict[str, Any]:
        return {
            "code_id": "qr_1",
            "scanned_at": moment,
            "day": date(2027, 1, 1),
            "visitor": f"{n:032x}",
            "browser": "Safari",
            "device": "mobile",
            "referrer": None,
            "country": None,
        }

    for n in range(5):
        writer.add(row(n))
    with pytest.raises(sa.exc.OperationalError):  # no tables yet: the database is not ready
        writer.flush()
    tables = [ApiKey.__table__, QrCode.__table__, DynamicCode.__table__, Scan.__table__]
    db.metadata.create_all(engine, tables=tables)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(ApiKey.__table__).values(
                id=1, prefix="p", secret_hash="h", name="n", plan="pro", scopes=[], created_at=moment
            )
        )
        connection.execute(
            sa.insert(QrCode.__table__).values(
                id="qr_1",
                owner_id=1,
                content_hash="c",
                data="https://a.example/",
                options={},
                version=2,
                created_at=moment,
            )
        )
        connection.execute(
            sa.insert(DynamicCode.__table__).values(
                code_id="qr_1", short_code="AAAAAAAAAAAAA", short_url="u", disabled=False
            )
        )
    assert writer.flush() == 3
    writer.close()
    with engine.connect() as connection:
        kept = connection.scalars(sa.select(Scan.__table__.c.visitor).order_by(Scan.__table__.c.id)).all()
    assert kept == [f"{n:032x}" for n in (2, 3, 4)]
    engine.dispose()
