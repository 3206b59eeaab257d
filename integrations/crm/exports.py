"""Mail-merge export of a campaign: a CSV row per contact with a code, and a ZIP of it with the images.

`qr_payload` is the short URL the code holds (for Word's `MERGEBARCODE` or InDesign's
QR data merge), `qr_image_url` its public PNG; the ZIP's CSV adds `qr_image_file`, the
image's name in the archive, unique whatever the contacts are called. The contact
columns are the CSV import's, so an export reads back as an import. Images come through
the render cache and pool a slice at a time and go straight into a spooled file.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import sqlalchemy as sa
from sqlalchemy.orm import lazyload

from integrations.crm.campaigns import get_campaign
from integrations.crm.mailmerge import csv_bytes, write_zip
from integrations.crm.models import Campaign, CampaignCode, Contact
from integrations.crm.schemas import CONTACT_COLUMNS
from qrsvc.extensions import db
from qrsvc.models import ApiKey
from qrsvc.toolkit import ApiError, image_url, images_base, images_of, unique_filename

__all__ = ["CSV_NAME", "HEADER", "ZIP_HEADER", "Export", "campaign_csv", "campaign_zip", "export_name"]

CSV_NAME = "contacts.csv"
HEADER = ("contact_id", *CONTACT_COLUMNS, "reference", "qr_payload", "qr_image_url")
ZIP_HEADER = (*HEADER, "qr_image_file")
#: A ZIP up to this size is built in memory; a larger one spills to a temporary file.
_SPOOL_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Export:
    """What a download needs: the campaign (for its file name) and the content."""

    campaign: Campaign
    content: IO[bytes]


def _rows(campaign: Campaign) -> list[tuple[CampaignCode, Contact]]:
    """Every contact with a code in the campaign, by name; one query, the codes joined."""
    query = (
        sa.select(CampaignCode, Contact)
        .join(Contact, Contact.id == CampaignCode.contact_id)
        .where(CampaignCode.campaign_id == campaign.id)
        .order_by(Contact.family_name, Contact.given_name, Contact.id)
        .options(lazyload(Contact.code))  # the contact's vCard code is not exported
    )
    return [(link, contact) for link, contact in db.session.execute(query)]


def _cells(link: CampaignCode, contact: Contact, base: str) -> list[object]:
    fields = [getattr(contact, name.removeprefix("address.")) for name in CONTACT_COLUMNS]
    code = link.code
    return [contact.id, *fields, link.reference, code.encoded, image_url(code, "png", base=base)]


def campaign_csv(owner: ApiKey, campaign_id: str) -> Export:
    """The Excel-safe CSV (BOM, CRLF, formulas neutralised): one row per contact with a code."""
    campaign = get_campaign(owner, campaign_id)
    base = images_base()
    rows = [_cells(link, contact, base) for link, contact in _rows(campaign)]
    return Export(campaign, io.BytesIO(csv_bytes(HEADER, rows)))


def _image_names(contacts: Sequence[Contact], fmt: str) -> list[str]:
    """`Given-Family.png`, made safe and unique regardless of case (the contact's id if nothing is left)."""
    used = {CSV_NAME}
    return [
        unique_filename(f"{contact.given_name}-{contact.family_name}", fmt, used, contact.id)
        for contact in contacts
    ]


def campaign_zip(owner: ApiKey, campaign_id: str, fmt: str) -> Export:
    """The CSV (with each row's `qr_image_file`) and one image per contact in `fmt`."""
    campaign = get_campaign(owner, campaign_id)
    rows = _rows(campaign)
    names = _image_names([contact for _link, contact in rows], fmt)
    base = images_base()
    table = csv_bytes(
        ZIP_HEADER,
        ([*_cells(link, contact, base), name] for (link, contact), name in zip(rows, names, strict=True)),
    )

    def files() -> Iterator[tuple[str, bytes]]:
        yield CSV_NAME, table
        images = images_of([link.code for link, _contact in rows], fmt)
        for name, image in zip(names, images, strict=True):
            if isinstance(image, ApiError):
                raise image
            yield name, image.content

    return Export(campaign, _spooled(lambda out: write_zip(out, files())))


def _spooled(write: Callable[[IO[bytes]], object]) -> IO[bytes]:
    """A spooled temporary file filled by `write(file)`, rewound; closed again if writing fails."""
    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 (returned open)
    try:
        write(out)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def export_name(campaign: Campaign, extension: str) -> str:
    """The download's file name: the campaign's name made safe, else its id."""
    return unique_filename(campaign.name, extension, set(), campaign.id)
