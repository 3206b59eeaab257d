"""Campaigns: a landing page with UTM parameters, and one dynamic code per contact that leads there.

A contact's code redirects to the landing page with the campaign's `utm_*` parameters
and `qrc=<reference>`, an opaque random reference: never the contact's name, email or
id, so nothing the visitor's browser, analytics or the landing page's logs see says for
whom the code was printed. The code is an ordinary stored dynamic code of the key: it
can be retargeted (`PATCH /v1/qr/{id}`) without reprinting.

A contact has one code per campaign, decided by the (campaign, contact) primary key:
codes are drawn in one batch for the contacts without one, then inserted with
`ON CONFLICT DO NOTHING`; a request that loses a race to another deletes what it drew
and answers with the winner's codes. Services flush; the request owns the transaction.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus, urlencode, urlsplit

import sqlalchemy as sa
from flask import current_app

from integrations.crm.campaign_schemas import CampaignIn, CodesIn
from integrations.crm.models import Campaign, CampaignCode, Contact
from qrsvc.extensions import db
from qrsvc.models import ApiKey, DynamicCode, QrCode
from qrsvc.toolkit import (
    ApiError,
    NotFoundError,
    Page,
    QrOptions,
    check_target,
    insert,
    make_dynamic_codes,
    now,
    paginate,
)

__all__ = [
    "CODE_OPTIONS",
    "UTM_FIELDS",
    "MadeCode",
    "MadeCodes",
    "code_counts",
    "codes_query",
    "create_campaign",
    "get_campaign",
    "list_campaigns",
    "make_codes",
    "new_reference",
    "target_url",
    "utm_of",
]

UTM_FIELDS = ("source", "medium", "campaign")
#: How campaign codes are drawn: printed on paper and read from a hand, so EC M at 512 px.
CODE_OPTIONS = QrOptions(data="-", format="png", size=512, error_correction="M")
#: 80 random bits as 16 lowercase base32 characters.
_REFERENCE_BYTES = 10


def new_campaign_id() -> str:
    """`cp_` and 128 random bits."""
    return "cp_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def new_reference() -> str:
    """The opaque `qrc` of one contact's code: random, so it says nothing about the contact."""
    return base64.b32encode(secrets.token_bytes(_REFERENCE_BYTES)).decode().rstrip("=").lower()


def utm_of(campaign: Campaign) -> dict[str, str | None]:
    return {name: getattr(campaign, f"utm_{name}") for name in UTM_FIELDS}


def target_url(landing_url: str, utm: dict[str, str | None], reference: str) -> str:
    """The landing URL with `utm_*` and `qrc` added to its query, its own parameters kept as written.

    A parameter of ours that the landing URL already has (an old `utm_source`) is replaced;
    the fragment stays last. Our values are percent-encoded (a space is `%20`).
    """
    ours = {f"utm_{name}": value for name, value in utm.items() if value}
    ours["qrc"] = reference
    rest, hash_mark, fragment = landing_url.partition("#")
    base, _mark, query = rest.partition("?")
    if not urlsplit(base).path:
        base += "/"
    kept = [pair for pair in query.split("&") if pair and unquote_plus(pair.split("=", 1)[0]) not in ours]
    joined = "&".join([*kept, urlencode(ours, quote_via=quote)])
    return f"{base}?{joined}{hash_mark}{fragment}"


def _check_landing(landing_url: str, utm: dict[str, str | None]) -> None:
    """The landing URL and every target made from it must be http(s) URLs a redirect may send."""
    check_target(landing_url, "landing_url")
    try:
        check_target(target_url(landing_url, utm, new_reference()), "landing_url")
    except ApiError as error:
        raise ApiError(
            422,
            error.code,
            f"landing_url with the UTM parameters and the qrc reference added is too long ({error.message})",
            field="landing_url",
        ) from None


def create_campaign(owner: ApiKey, fields: CampaignIn) -> Campaign:
    """A new campaign; its landing URL is checked as every code's target will be (422 `invalid_target`)."""
    utm = {name: getattr(fields.utm, name) if fields.utm else None for name in UTM_FIELDS}
    _check_landing(fields.landing_url, utm)
    campaign = Campaign(
        id=new_campaign_id(),
        owner_id=owner.id,
        name=fields.name,
        landing_url=fields.landing_url,
        **{f"utm_{name}": value for name, value in utm.items()},
        created_at=now(),
    )
    db.session.add(campaign)
    db.session.flush()
    return campaign


def get_campaign(owner: ApiKey, campaign_id: str) -> Campaign:
    """The owner's campaign; another key's is as absent as a missing one."""
    query = sa.select(Campaign).where(Campaign.id == campaign_id, Campaign.owner_id == owner.id)
    campaign: Campaign | None = db.session.scalar(query)
    if campaign is None:
        raise NotFoundError(f"no campaign {campaign_id!r}")
    return campaign


def list_campaigns(owner: ApiKey, limit: int, cursor: str | None = None) -> Page[Campaign]:
    """The owner's campaigns, newest first."""
    query = sa.select(Campaign).where(Campaign.owner_id == owner.id)
    return paginate(query, (Campaign.created_at, Campaign.id), limit, cursor)


def code_counts(campaign_ids: Sequence[str]) -> dict[str, int]:
    """How many contacts have a code in each campaign (one query for a page of campaigns)."""
    if not campaign_ids:
        return {}
    query = (
        sa.select(CampaignCode.campaign_id, sa.func.count())
        .where(CampaignCode.campaign_id.in_(campaign_ids))
        .group_by(CampaignCode.campaign_id)
    )
    counts = {campaign_id: int(count) for campaign_id, count in db.session.execute(query)}
    return {campaign_id: counts.get(campaign_id, 0) for campaign_id in campaign_ids}


def codes_query(campaign: Campaign) -> sa.Select[str]:
    """The ids of the campaign's codes, as a subquery for scan counts."""
    return sa.select(CampaignCode.qr_code).where(CampaignCode.campaign_id == campaign.id)


@dataclass(frozen=True, slots=True)
class MadeCode:
    """A contact's code in a campaign, and whether this request made it."""

    link: CampaignCode
    created: bool


@dataclass(frozen=True, slots=True)
class MadeCodes:
    campaign: Campaign
    items: list[MadeCode]

    @property
    def created(self) -> int:
        return sum(1 for item in self.items if item.created)


def _chosen_contacts(owner: ApiKey, request: CodesIn) -> list[str]:
    """The contact ids asked for, each once in the order given, or every contact's oldest first.

    An unknown (or another key's) id is a 404 naming its place; more than
    QRSVC_CRM_CAMPAIGN_MAX_CODES contacts is a 413 before anything is drawn.
    """
    if (request.contact_ids is None) == (not request.all):
        raise ApiError(400, "invalid_parameter", "give either contact_ids or all: true", field="contact_ids")
    query = sa.select(Contact.id).where(Contact.owner_id == owner.id)
    if request.contact_ids is None:
        most: int = current_app.config["CRM_CAMPAIGN_MAX_CODES"]
        order = (Contact.created_at, Contact.id)
        found = list(db.session.scalars(query.order_by(*order).limit(most + 1)))
        if len(found) > most:
            raise ApiError(
                413,
                "too_many_contacts",
                f"one request makes codes for at most {most} contacts and this key has more; "
                "send contact_ids in parts",
                field="all",
            )
        return found
    wanted = list(dict.fromkeys(request.contact_ids))
    known = set(db.session.scalars(query.where(Contact.id.in_(wanted))))
    for index, contact_id in enumerate(request.contact_ids):
        if contact_id not in known:
            raise NotFoundError(f"no contact {contact_id!r}", field=f"contact_ids[{index}]")
    return wanted


def _links(campaign: Campaign, contact_ids: Sequence[str]) -> dict[str, CampaignCode]:
    query = sa.select(CampaignCode).where(
        CampaignCode.campaign_id == campaign.id, CampaignCode.contact_id.in_(contact_ids)
    )
    return {link.contact_id: link for link in db.session.scalars(query)}


def _draw(owner: ApiKey, campaign: Campaign, contact_ids: Sequence[str]) -> set[str]:
    """Draw a code for each contact in one batch and claim it; the contacts whose claim won."""
    utm = utm_of(campaign)
    references = [new_reference() for _ in contact_ids]
    targets = [target_url(campaign.landing_url, utm, reference) for reference in references]
    drawn = make_dynamic_codes(owner, targets, CODE_OPTIONS)
    moment = now()
    rows = [
        {
            "campaign_id": campaign.id,
            "contact_id": contact_id,
            "qr_code": code.id,
            "reference": reference,
            "created_at": moment,
        }
        for contact_id, code, reference in zip(contact_ids, drawn, references, strict=True)
    ]
    table = CampaignCode.__table__
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.campaign_id, table.c.contact_id])
        .returning(table.c.contact_id)
    )
    won = set(db.session.scalars(statement, rows))
    lost = [row["qr_code"] for row in rows if row["contact_id"] not in won]
    if lost:  # another request claimed these contacts first: its codes stand, ours go
        db.session.execute(sa.delete(DynamicCode).where(DynamicCode.code_id.in_(lost)))
        db.session.execute(sa.delete(QrCode).where(QrCode.id.in_(lost)))
    return won


def make_codes(owner: ApiKey, campaign_id: str, request: CodesIn) -> MadeCodes:
    """Each chosen contact's code in the campaign, made in one batch for those without one.

    Asking again (or at the same time) gives the same code per contact. A code drawn
    for a contact that another request claimed first is deleted, but was counted
    against the plan's monthly codes like any code drawn.
    """
    campaign = get_campaign(owner, campaign_id)
    contact_ids = _chosen_contacts(owner, request)
    existing = _links(campaign, contact_ids) if contact_ids else {}
    missing = [contact_id for contact_id in contact_ids if contact_id not in existing]
    created = _draw(owner, campaign, missing) if missing else set()
    if missing:
        existing = _links(campaign, contact_ids)
    items = [MadeCode(existing[contact_id], contact_id in created) for contact_id in contact_ids]
    return MadeCodes(campaign, items)
