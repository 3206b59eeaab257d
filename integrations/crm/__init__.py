"""CRM: contacts with vCard codes, printable business cards, campaign codes and mail-merge export.

`init_app(app)` adds the QRSVC_CRM_* settings, the /v1/crm blueprint (scope `crm`) and the
tables' migrations.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qrsvc.toolkit import Setting, add_migrations, apply_settings, register_operations

if TYPE_CHECKING:
    from flask import Flask

SETTINGS = (
    Setting(
        "CRM_IMPORT_MAX_ROWS", 1000, int, "most rows one contacts CSV import may hold (413 too_many_rows)"
    ),
    Setting("CRM_MAX_CARDS", 200, int, "most business cards in one PDF (413 too_many_cards)"),
    Setting(
        "CRM_CAMPAIGN_MAX_CODES",
        1000,
        int,
        "most contacts one request makes campaign codes for (413 too_many_contacts)",
    ),
)


def init_app(app: Flask) -> None:
    from integrations.crm import models  # noqa: F401 (tables on the metadata)
    from integrations.crm.openapi import OPERATIONS
    from integrations.crm.views import bp

    apply_settings(app.config, SETTINGS)
    app.register_blueprint(bp)
    register_operations(app, OPERATIONS)
    add_migrations(app, Path(__file__).parent / "migrations" / "versions")


__all__ = ["SETTINGS", "init_app"]
