"""What a campaign request may hold: one frozen schema per request, every bound in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from flask import current_app

from qrsvc.toolkit import boolean, choice, integer, list_of, nested, nullable, text

__all__ = [
    "EXPORT_FORMATS",
    "MAX_STATS_DAYS",
    "CampaignIn",
    "CodesIn",
    "ExportQuery",
    "StatsQuery",
    "UtmIn",
]

#: Image formats a mail-merge ZIP may hold (Word and InDesign place both).
EXPORT_FORMATS = ("png", "svg")
#: The longest range of a campaign's stats, in days (the core's scan counts allow as much).
MAX_STATS_DAYS = 366

_UTM_VALUE = nullable(text(200, strip=True, allow_controls=False), blank=True)
_CONTACT_ID = text(40, allow_blank=False, allow_controls=False)


def _max_codes() -> int:
    most: int = current_app.config["CRM_CAMPAIGN_MAX_CODES"]
    return most


@dataclass(frozen=True, slots=True, kw_only=True)
class UtmIn:
    """The `utm_*` parameters every code's target carries (left out or blank: not added)."""

    source: Annotated[str | None, _UTM_VALUE] = None
    medium: Annotated[str | None, _UTM_VALUE] = None
    campaign: Annotated[str | None, _UTM_VALUE] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignIn:
    """`POST /campaigns`: a name for people, the page every code leads to, and its UTM parameters."""

    name: Annotated[str, text(200, strip=True, allow_blank=False, allow_controls=False)]
    landing_url: Annotated[str, text(2048, strip=True, allow_blank=False)]
    utm: Annotated[UtmIn | None, nullable(nested(UtmIn))] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CodesIn:
    """`POST /campaigns/{id}/codes`: some contacts (`contact_ids`) or `all` of them."""

    contact_ids: Annotated[
        tuple[str, ...] | None, nullable(list_of(_CONTACT_ID, min_length=1, max_length=_max_codes))
    ] = None
    all: Annotated[bool, boolean()] = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsQuery:
    """`GET /campaigns/{id}/stats?days=N`: the last N days, today included (default: since it began)."""

    days: Annotated[int | None, nullable(integer(1, MAX_STATS_DAYS))] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportQuery:
    """`GET /campaigns/{id}/export.zip?format=svg`: the images' format (PNG by default)."""

    format: Annotated[str, choice(EXPORT_FORMATS)] = "png"
