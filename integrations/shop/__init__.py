"""The shop integration: product and order codes, confirmation emails, PDF labels, store webhooks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from integrations.shop.labels.limits import DEFAULT_LIMITS
from qrsvc.toolkit import Setting, add_migrations, apply_settings, register_job, register_operations

if TYPE_CHECKING:
    from flask import Flask

SETTINGS = (
    Setting("SHOP_NAME", "Our shop", doc="shop name shown in confirmation emails"),
    Setting("SHOP_OWNER_KEY", None, doc="prefix of the API key that owns records made by webhooks"),
    Setting("SHOP_CURRENCY", None, doc="currency of prices arriving by product webhooks, e.g. EUR"),
    Setting("SHOP_ORDER_CODE_SIZE", 300, int, "size in px of the order code in emails"),
    Setting("SHOPIFY_WEBHOOK_SECRET", None, doc="Shopify app's client secret (signs its webhooks)"),
    Setting("SHOPIFY_STORE_URL", None, doc="storefront origin for product URLs; needed by product webhooks"),
    Setting("WOOCOMMERCE_WEBHOOK_SECRET", None, doc="secret set on the WooCommerce webhooks"),
    Setting(
        "LABEL_MAX_LABELS", DEFAULT_LIMITS.labels, int, "most labels in one label PDF (413 too_many_labels)"
    ),
    Setting("LABEL_MAX_PAGES", DEFAULT_LIMITS.pages, int, "most pages in one label PDF (413 too_many_pages)"),
    Setting(
        "LABEL_MAX_MEGAPIXELS",
        DEFAULT_LIMITS.megapixels,
        float,
        "most printer dots of distinct codes in one label PDF (413)",
    ),
    Setting(
        "SMTP_URL",
        None,
        doc="smtp://user:pass@host:port (STARTTLS; ?starttls=0: loopback only) or smtps://…; unset: none",
    ),
    Setting("SMTP_TIMEOUT", 10.0, float, "seconds to wait for the SMTP server"),
    Setting("EMAIL_FROM", "orders@localhost", doc="From: of confirmation emails"),
    Setting("EMAIL_IMAGES", "cid", doc="cid (a MIME part, for Gmail/Outlook) or data-uri"),
    Setting("OUTBOX_BACKOFF_SECONDS", 60.0, float, "first retry delay; doubles each attempt (max a day)"),
    Setting("OUTBOX_MAX_ATTEMPTS", 8, int, "attempts before an email is marked failed"),
    Setting("OUTBOX_INTERVAL_SECONDS", 5.0, float, "how often `qrsvc worker` looks for email to send"),
    Setting(
        "OUTBOX_LEASE_SECONDS",
        600.0,
        float,
        "an email claimed by a worker that died is sent again after this; at least 10 × QRSVC_SMTP_TIMEOUT",
    ),
    Setting("OUTBOX_BATCH_SIZE", 10, int, "emails a worker claims at once (PostgreSQL: SKIP LOCKED)"),
)


def init_app(app: Flask) -> None:
    """Settings, the /v1/shop blueprint, the mail transport, the tables' migrations, `qrsvc outbox`,
    the outbox's metrics, and the worker's outbox job."""
    from integrations.shop import emails, models, outbox  # noqa: F401 (models: tables on the metadata)
    from integrations.shop.openapi import OPERATIONS
    from integrations.shop.views import bp

    apply_settings(app.config, SETTINGS)
    emails.init_app(app)
    app.register_blueprint(bp)
    register_operations(app, OPERATIONS)
    add_migrations(app, Path(__file__).parent / "migrations" / "versions")
    outbox.init_app(app)
    app.cli.add_command(outbox.cli)
    register_job(app, "shop.outbox", outbox.run_job, app.config["OUTBOX_INTERVAL_SECONDS"])


__all__ = ["SETTINGS", "init_app"]
