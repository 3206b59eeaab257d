"""Dynamic codes: a printed short URL whose target, state and expiry change behind it.

The symbol encodes `{base}/R/{CODE}` (scheme and host upper-cased, so a plain origin
keeps the whole URL in QR alphanumeric mode) and never changes; the code's stored
`data` is the target, which `change` may replace. `CODE` is 13 characters of RFC 4648
base32 (65 random bits), unique by a database constraint; `/r/<CODE>` finds it in any
case with one index probe (`resolve`).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from qrsvc import clock, codes, fields
from qrsvc.codes import MadeCode
from qrsvc.errors import ApiError
from qrsvc.extensions import db
from qrsvc.fields import UNSET, Unset
from qrsvc.links import public_url
from qrsvc.models import ApiKey, DynamicCode, QrCode
from qrsvc.options import QrOptions

SHORT_CODE_LENGTH = 13  # × 5 bits = 65 random bits
#: The path a dynamic code prints; `/r/` works as well (DESIGN.md names it so).
SHORT_PATH = "/R/"
MAX_TARGET_LENGTH = 2048
_SHORT_CODE = re.compile(rf"[A-Z2-7]{{{SHORT_CODE_LENGTH}}}")
# Whitespace and C0/C1 controls (a CR or LF in a Location header would start a header of its own).
_UNSAFE_IN_TARGET = re.compile("[\\s\x00-\x1f\x7f-\x9f]")
_TARGET_SCHEMES = frozenset({"http", "https"})
#: Short codes checked per query when looking for free ones.
_CHECK_CHUNK = 500


def new_short_code() -> str:
    """13 characters of uppercase RFC 4648 base32: 65 bits from the system's CSPRNG."""
    return base64.b32encode(secrets.token_bytes(9)).decode()[:SHORT_CODE_LENGTH]


def normalise_short_code(text: str) -> str | None:
    """The code as stored (upper-case), or None when `text` cannot be one (no query needed)."""
    if len(text) != SHORT_CODE_LENGTH:
        return None
    upper = text.upper()
    return upper if _SHORT_CODE.fullmatch(upper) else None


def short_base(base: str | None = None) -> str:
    """The origin short URLs start with: `base`, QRSVC_PUBLIC_BASE_URL or the request's host.

    Scheme and host are case-insensitive (RFC 3986 §3.1, §3.2.2) and are upper-cased; a
    path of the base is kept as it is, since paths are not.
    """
    parts = urlsplit((base or public_url("")).strip().rstrip("/"))
    netloc = parts.netloc if "@" in parts.netloc else parts.netloc.upper()  # user info keeps its case
    return urlunsplit((parts.scheme.upper(), netloc, parts.path, "", ""))


def check_target(value: object, field: str = "target") -> str:
    """An absolute http(s) URL, safe to send as a `Location`; anything else is a 422 `invalid_target`."""
    if not isinstance(value, str):
        raise ApiError(400, "invalid_parameter", f"{field} must be a string (an http or https URL)", field)

    def refuse(why: str) -> ApiError:
        return ApiError(422, "invalid_target", f"{field} {why}", field)

    if len(value) > MAX_TARGET_LENGTH:
        raise refuse(f"is longer than {MAX_TARGET_LENGTH} characters")
    if _UNSAFE_IN_TARGET.search(value):
        raise refuse("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() not in _TARGET_SCHEMES:
        raise refuse("must be an http or https URL")
    if "@" in parts.netloc:
        raise refuse("must not carry a user name or password (user@host)")
    try:
        if not parts.hostname or parts.port == 0:
            raise refuse("must name a host")
    except ValueError:
        raise refuse("has an invalid port") from None
    return value


@dataclass(frozen=True, slots=True)
class Planned:
    """A dynamic code before it is drawn: its target and the short URL it will print."""

    target: str
    short_code: str
    short_url: str


def plan_codes(
    targets: Sequence[str], base: str | None = None, *, draw: Callable[[], str] = new_short_code
) -> list[Planned]:
    """A free short code for each (checked) target; a drawn code already taken is drawn again.

    The unique constraint still decides: a code taken between this check and the insert
    (two requests drawing the same 65 bits in the same instant) fails that request.
    """
    if not targets:
        return []
    prefix = short_base(base) + SHORT_PATH
    chosen: list[str] = []
    seen: set[str] = set()
    while len(chosen) < len(targets):
        drawn = dict.fromkeys(draw() for _ in range(len(targets) - len(chosen)))
        wanted = [code for code in drawn if code not in seen]
        taken: set[str] = set()
        for start in range(0, len(wanted), _CHECK_CHUNK):
            chunk = wanted[start : start + _CHECK_CHUNK]
            query = sa.select(DynamicCode.short_code).where(DynamicCode.short_code.in_(chunk))
            taken.update(db.session.scalars(query))
        chosen.extend(code for code in wanted if code not in taken)
        seen.update(wanted)
    return [Planned(target, code, prefix + code) for target, code in zip(targets, chosen, strict=True)]


def attach(stored: Sequence[QrCode], planned: Sequence[Planned]) -> None:
    """Insert the dynamic rows of newly stored codes (flushed, not committed) and hang them on the codes."""
    rows = [
        {
            "code_id": code.id,
            "short_code": plan.short_code,
            "short_url": plan.short_url,
            "disabled": False,
            "expires_at": None,
        }
        for code, plan in zip(stored, planned, strict=True)
    ]
    if rows:
        db.session.execute(sa.insert(DynamicCode.__table__), rows)
    for code, row in zip(stored, rows, strict=True):
        set_committed_value(code, "dynamic", DynamicCode(**row))


def make_dynamic(
    owner: ApiKey, targets: Sequence[str], template: QrOptions, *, base: str | None = None
) -> list[MadeCode]:
    """Draw and store one new dynamic code per target in one batch (the render pool for many).

    Every target is checked first (422 `invalid_target`); the codes are drawn with
    `template`'s options (its `data` is not used), counted against the quota once, and
    written in the caller's transaction, never committed: all or none.
    """
    for index, target in enumerate(targets):
        check_target(target, "data" if len(targets) == 1 else f"targets[{index}]")
    planned = plan_codes(targets, base)
    made = codes.make_codes(
        owner, [replace(template, data=p.short_url) for p in planned], keep=[p.target for p in planned]
    )
    attach([each.code for each in made], planned)
    return made


def make_dynamic_codes(
    owner: ApiKey, targets: Sequence[str], template: QrOptions | None = None, *, base: str | None = None
) -> list[QrCode]:
    """One new dynamic code per target, drawn as `template` (default options otherwise).

    Each code's `data` is its target and `dynamic.short_url` what it prints (see `make_dynamic`).
    """
    chosen = template or QrOptions(data="")
    return [each.code for each in make_dynamic(owner, targets, chosen, base=base)]


@dataclass(frozen=True, slots=True)
class Destination:
    """What `/r/<CODE>` needs of a code, read without loading an ORM object."""

    code_id: str
    target: str
    disabled: bool
    expires_at: datetime | None

    def gone(self, now: datetime) -> bool:
        return self.disabled or (self.expires_at is not None and self.expires_at <= now)


_dynamic = DynamicCode.__table__
_codes = QrCode.__table__
_RESOLVE = (
    sa.select(_dynamic.c.code_id, _codes.c.data, _dynamic.c.disabled, _dynamic.c.expires_at)
    .select_from(_dynamic.join(_codes, _codes.c.id == _dynamic.c.code_id))
    .where(_dynamic.c.short_code == sa.bindparam("short_code"))
)


def resolve(short_code: str) -> Destination | None:
    """The code behind a (normalised) short code: one indexed query on a pooled connection, no cache.

    Nothing is cached, so every worker follows a change as soon as it is committed.
    """
    with db.engine.connect() as connection:
        row = connection.execute(_RESOLVE, {"short_code": short_code}).first()
    if row is None:
        return None
    return Destination(row.code_id, row.data, bool(row.disabled), row.expires_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """The body of `PATCH /v1/qr/<id>`: each field left out stays as it is."""

    target: Annotated[str | Unset, fields.text()] = UNSET
    disabled: Annotated[bool | Unset, fields.boolean()] = UNSET
    #: null: the code no longer expires.
    expires_at: Annotated[datetime | None | Unset, fields.nullable(fields.iso_datetime())] = UNSET


def change(owner: ApiKey, code_id: str, wanted: Change) -> QrCode:
    """Retarget, disable or (un)expire the owner's dynamic code; the image stays the same.

    Flushed, not committed. A code that is not dynamic is a 422 `not_dynamic`.
    """
    code = codes.get_code(owner, code_id)
    dynamic = code.dynamic
    if dynamic is None:
        raise not_dynamic(code_id)
    if not isinstance(wanted.target, Unset):
        code.data = check_target(wanted.target)
    if not isinstance(wanted.disabled, Unset):
        dynamic.disabled = wanted.disabled
    if not isinstance(wanted.expires_at, Unset):
        dynamic.expires_at = wanted.expires_at
    db.session.flush()
    return code


def get_dynamic_code(owner: ApiKey, code_id: str) -> QrCode:
    """The owner's dynamic code: someone else's is a 404 as for any code, a static one a 422."""
    code = codes.get_code(owner, code_id)
    if code.dynamic is None:
        raise not_dynamic(code_id)
    return code


def not_dynamic(code_id: str) -> ApiError:
    """The 422 for asking a static code for what only dynamic codes have."""
    return ApiError(
        422,
        "not_dynamic",
        f"code {code_id!r} is not dynamic: its image holds its data itself, so nothing can change "
        'it and nothing counts its scans; make a code with "dynamic": true',
    )


def describe(code: QrCode, scans: Mapping[str, object] | None = None) -> dict[str, Any] | None:
    """The `dynamic` object of a code's JSON (None for a static code); `scans` when counted."""
    dynamic = code.dynamic
    if dynamic is None:
        return None
    body: dict[str, Any] = {
        "short_url": dynamic.short_url,
        "target": code.data,
        "disabled": dynamic.disabled,
        "expires_at": clock.isoformat(dynamic.expires_at) if dynamic.expires_at else None,
    }
    if scans is not None:
        body["scans"] = dict(scans)
    return body


__all__ = [
    "MAX_TARGET_LENGTH",
    "SHORT_CODE_LENGTH",
    "SHORT_PATH",
    "Change",
    "Destination",
    "Planned",
    "attach",
    "change",
    "check_target",
    "describe",
    "get_dynamic_code",
    "make_dynamic",
    "make_dynamic_codes",
    "new_short_code",
    "normalise_short_code",
    "not_dynamic",
    "plan_codes",
    "resolve",
    "short_base",
]
