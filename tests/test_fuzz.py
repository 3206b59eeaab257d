"""Every route of the whole app, fed arbitrary JSON, query strings and ids: a 2xx/3xx or a JSON 4xx.

The routes come from `app.url_map`, so a new route is covered without touching this
file. Each route gets its own bounded Hypothesis run (SQLite only; a fixed number
of examples, no deadline); every route that answers 5xx (or HTML for an error) is
collected with its smallest failing request and the server-side traceback line,
and the test fails once, listing them all.

`QRSVC_FUZZ_EXAMPLES` raises the number of examples per route for a deeper local run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT

EXAMPLES = int(os.environ.get("QRSVC_FUZZ_EXAMPLES", "40"))
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only: the harness is about inputs, the database tests cover both backends."""
    return f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'qrsvc.sqlite3'}"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"PUBLIC_RATE_LIMIT": "1000000/minute"}


# ---------------------------------------------------------------- what is thrown
_NASTY = [
    "\ud800",
    "\udfff",
    "a\ud83db",  # half a surrogate pair
    "\x00",
    "a\x00b",
    "\x01\x1f\x7f\x85",
    "\u2028\u2029\u202e\ufeff",
    "😀",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-0",
    "9" * 400,
    "",
    " ",
    "../../etc/passwd",
    "C:\\Windows\\win.ini",
    "<script>alert(1)</script>",
    "%00",
    "%ff",
    "true",
    "null",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59+14:00",
    "-999999999-01-01T00:00:00",
    "2026-02-30T25:61:61Z",
    "99999999999999999999",
    "1.5",
    "x" * 5000,
]
_texts = st.one_of(
    st.text(max_size=20),
    st.text(
        alphabet=st.one_of(
            st.characters(exclude_categories=()),
            st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
            st.characters(max_codepoint=0x1F),
        ),
        max_size=20,
    ),
    st.sampled_from(_NASTY),
)
_numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _texts)


def _values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
        max_leaves=12,
    )


_RAW_BODIES = [
    b"",
    b"{",
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b'{"data": "\xff\xfe"}',
    b'{"data": "x"} trailing',
    b"NaN",
    b'"just a string"',
    b"\xef\xbb\xbf{}",
    b'{"data": "' + b"1" * 5000 + b'"}',
    b'{"data": 1' + b"0" * 5000 + b"}",
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON template where a value can be swapped."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def _mutated(draw: st.DrawFn, template: Any, keys: st.SearchStrategy[str]) -> Any:
    """A valid body with one place changed: reaches the code behind the first field check."""
    places = list(_paths(template))
    place = draw(st.sampled_from(places))
    body = _replace(template, place, draw(st.one_of(st.sampled_from(_NASTY), _scalars, _values(keys))))
    if isinstance(body, dict) and draw(st.booleans()):
        body = {**body, draw(keys): draw(_values(keys))}
    return body


def _encode_query(params: dict[str, str]) -> str:
    """Percent-encoded bytes as any client could send them, invalid UTF-8 included."""
    return "&".join(
        f"{quote(k.encode('utf-8', 'surrogatepass'), safe='')}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
        for k, v in params.items()
    )


# ---------------------------------------------------------------- what we know of the app
def _seed(client: Any, auth: dict[str, str]) -> tuple[dict[str, Any], set[tuple[str, str, str]]]:
    """Make a few real records (a code, an event, a ticket, a product, an order) to aim at.

    Returns the request bodies that worked, by route, and every id-like value the
    answers contained (key, value, path it came from). A seed that fails only makes
    the fuzzing shallower.
    """
    templates: dict[str, Any] = {}
    ids: set[tuple[str, str, str]] = set()
    seeds = [
        ("/v1/qr/generate", {"data": "https://example.com/fuzz", "response": "json"}),
        ("/v1/qr/generate", {"data": "dynamic", "dynamic": True, "response": "json"}),
        ("/v1/qr/batch", {"items": [{"data": "one", "filename": "a"}, {"data": "two"}], "response": "url"}),
        (
            "/v1/events",
            {"name": "Fuzz fest", "starts_at": "2030-01-01T18:00:00Z", "ends_at": "2030-01-01T23:00:00Z"},
        ),
        ("/v1/shop/products", {"sku": "MUG-1", "name": "Mug", "url": "https://shop.example.com/p/mug"}),
        (
            "/v1/shop/orders",
            {
                "order_number": "1001",
                "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
                "items": [{"sku": "MUG-1", "quantity": 2, "unit_price": "9.50"}],
                "currency": "EUR",
                "shipping_address": {"name": "Ada", "address1": "1 Road", "city": "London", "country": "GB"},
            },
        ),
    ]
    for path, body in seeds:
        response = client.post(path, json=body, headers={**auth, "Accept": "application/json"})
        if response.status_code < 300:
            templates[path] = body
            ids.update((key, value, path) for key, value in _ids(response.get_json(silent=True)))
    for event_id in [value for key, value, path in list(ids) if key == "id" and path == "/v1/events"]:
        path = f"/v1/events/{event_id}/tickets"
        response = client.post(path, json={"holder_name": "Ada"}, headers=auth)
        if response.status_code < 300:
            templates["/v1/events/<event_id>/tickets"] = {"holder_name": "Ada"}
            found = response.get_json(silent=True)
            ids.update((key, value, "/v1/tickets") for key, value in _ids(found))
            if isinstance(found, dict) and isinstance(found.get("token"), str):
                templates["/v1/tickets/scan"] = {"token": found["token"]}
    return templates, ids


def _ids(value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, str) and (key in ("id", "sku", "code", "token") or key.endswith("_id")):
                yield key, inner
            yield from _ids(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _ids(inner)


def _plausible(argument: str, ids: set[tuple[str, str, str]]) -> list[str]:
    """Ids that fit a path parameter: named like it, or the `id` of a resource named like it."""
    resource = argument.removesuffix("_id")
    fitting = {v for k, v, path in ids if k == argument or (k == "id" and resource in path)}
    return sorted(fitting or {v for _k, v, _path in ids} or {"missing"})


def _field_names(client: Any, auth: dict[str, str], method: str, path: str) -> list[str]:
    """The fields a route says it accepts when sent an unknown one (`accepted: a, b, c`)."""
    probe = {"zz_unknown_field": 1}
    if method in _BODY_METHODS:
        response = client.open(path, method=method, json=probe, headers=auth)
    else:
        response = client.open(path, method=method, query_string=probe, headers=auth)
    body = response.get_json(silent=True)
    message = body.get("message", "") if isinstance(body, dict) else ""
    found = re.search(r"accepted: (.*)$", message)
    return [name.strip() for name in found.group(1).split(",") if name.strip()] if found else []


class _Tracebacks(logging.Handler):
    """Keeps the server-side exception behind each 500 (logged by the JSON 500 handler)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: str = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            frames = traceback.extract_tb(record.exc_info[2])
            ours = [f for f in frames if f.filename.startswith(str(ROOT)) and ".venv" not in f.filename]
            ours = ours or frames
            where = ours[-1]
            self.last = (
                f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]} "
                f"at {Path(where.filename).name}:{where.lineno} ({where.line})"
            )


def _check(response: Any) -> str | None:
    """None when the answer is acceptable; else what is wrong with it."""
    if response.status_code < 400:
        return None
    if response.status_code >= 500:
        return f"{response.status_code} {response.get_data()[:200]!r}"
    if not response.request.path.startswith("/v1/") and response.mimetype == "text/html":
        return None  # pages for people (a short link's 404 or 410 page) answer in HTML
    body = response.get_json(silent=True)
    if response.mimetype != "application/json" or not isinstance(body, dict):
        return f"{response.status_code} not JSON: {response.mimetype} {response.get_data()[:120]!r}"
    if body.get("success") is not False or not isinstance(body.get("error"), str):
        return f"{response.status_code} JSON without the error shape: {body}"
    return None


def test_every_route_answers_any_input_with_2xx_or_a_json_4xx(app, client, make_key) -> None:
    auth = {"Authorization": f"Bearer {make_key('fuzz', plan='unlimited')}"}
    templates, ids = _seed(client, auth)
    tracebacks = _Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    failures: list[str] = []
    routes = [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]
    assert len(routes) > 20, routes  # the integrations are mounted
    try:
        for rule, method in routes:
            failure = _fuzz_route(client, auth, rule, method, templates, ids, tracebacks)
            if failure:
                failures.append(failure)
    finally:
        logging.getLogger().removeHandler(tracebacks)
    assert not failures, f"{len(failures)} routes failed:\n\n" + "\n\n".join(failures)


def _fuzz_route(
    client: Any,
    auth: dict[str, str],
    rule: Any,
    method: str,
    templates: dict[str, Any],
    ids: set[tuple[str, str, str]],
    tracebacks: _Tracebacks,
) -> str | None:
    arguments = _ARGUMENT.findall(rule.rule)
    pools = {name: _plausible(name, ids) for name in arguments}
    plain = {name: pools[name][0] for name in arguments}
    names = _field_names(client, auth, method, _path(rule.rule, plain)) + ["data", "items", "id", "name"]
    keys = st.one_of(st.sampled_from(names), _texts)
    template = templates.get(rule.rule, {name: "x" for name in names[:3]})
    failure = _sweep(client, auth, rule, method, template, names, plain, tracebacks)
    if failure:
        return failure
    if method in _BODY_METHODS:
        body = st.one_of(
            _mutated(template, keys),
            _mutated(template, keys),
            _mutated(template, keys),
            st.dictionaries(keys, _values(keys), max_size=6),
            _values(keys),
            st.sampled_from(_RAW_BODIES),
        )
    else:
        body = st.none()
    path_values = st.fixed_dictionaries(
        {name: st.one_of(st.sampled_from(pools[name]), _texts) for name in arguments}
    )
    queries = st.dictionaries(keys, _texts, max_size=4)
    accepts = st.sampled_from(["application/json", "application/zip", "image/*", "text/html", "*/*"])
    seen: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(path_values, queries, body, accepts)
    def run(values: dict[str, str], query: dict[str, str], sent: Any, accept: str) -> None:
        problem = _send(client, auth, method, _path(rule.rule, values), query, sent, accept, tracebacks)
        if problem:
            seen[:] = [f"{method} {rule.rule}\n{problem}"]
            raise AssertionError(seen[0])

    try:
        run()
    except AssertionError:
        return seen[0] if seen else traceback.format_exc(limit=3)
    return None


def _path(rule: str, values: dict[str, str]) -> str:
    """The rule with each `<parameter>` replaced by its value, percent-encoded (any bytes)."""

    def fill(match: re.Match[str]) -> str:
        return quote(values[match.group(1)].encode("utf-8", "surrogatepass"), safe="")

    return _ARGUMENT.sub(fill, rule)


def _send(
    client: Any,
    auth: dict[str, str],
    method: str,
    path: str,
    query: dict[str, str],
    sent: Any,
    accept: str,
    tracebacks: _Tracebacks,
) -> str | None:
    """Make one request; None when the answer is acceptable, else the request and what went wrong."""
    headers = {**auth, "Accept": accept}
    data: bytes | None = None
    if sent is not None:
        headers["Content-Type"] = "application/json"
        data = sent if isinstance(sent, bytes) else json.dumps(sent).encode()
    tracebacks.last = ""
    url = f"{path}?{_encode_query(query)}" if query else path
    try:
        response = client.open(url, method=method, data=data, headers=headers)
        try:
            problem = _check(response)
        finally:
            response.close()
    except Exception as exc:  # raised past the error handlers, e.g. while streaming a body
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        problem = f"raised {exc!r}"
        tracebacks.last = f"{Path(frame.filename).name}:{frame.lineno} ({frame.line})"
    if problem is None:
        return None
    shown = data[:300] if data is not None else None
    return (
        f"  request: {method} {url[:300]} body={shown!r}\n  answer: {problem}\n"
        f"  server: {tracebacks.last or '-'}"
    )


#: What the deterministic sweep puts in each place of a valid request, one at a time.
_SWEEP: list[Any] = [
    "\ud800",
    "a\x00b",
    "",
    "x" * 5000,
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-14:00",
    10**400,
    -1,
    float("nan"),
    1e308,
    None,
    True,
    [],
    {},
]


def _sweep(
    client: Any,
    auth: dict[str, str],
    rule: Any,
    method: str,
    template: Any,
    names: list[str],
    plain: dict[str, str],
    tracebacks: _Tracebacks,
) -> str | None:
    """Each nasty value in each place of a valid request: what random search finds only by luck."""
    path = _path(rule.rule, plain)
    attempts: list[tuple[str, dict[str, str], Any]] = []
    for name in plain:
        for value in _SWEEP:
            if isinstance(value, str):
                attempts.append((_path(rule.rule, {**plain, name: value}), {}, None))
    if method in _BODY_METHODS:
        for place in _paths(template):
            attempts.extend((path, {}, _replace(template, place, value)) for value in _SWEEP)
    else:
        for name in names:
            attempts.extend((path, {name: value}, None) for value in _SWEEP if isinstance(value, str))
    for url, query, body in attempts:
        problem = _send(client, auth, method, url, query, body, "application/json", tracebacks)
        if problem:
            return f"{method} {rule.rule} (sweep)\n{problem}"
    return None
