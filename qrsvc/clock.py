"""The one clock: timezone-aware UTC, replaceable in tests."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as every JSON time is written."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
