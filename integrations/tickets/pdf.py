"""Printable tickets: an autoescaped template rendered by WeasyPrint with a locked-down fetcher.

WeasyPrint may load only `data:` URIs: no `file://`, no network. The QR is drawn by
the core's pure pipeline at whole-pixel modules and embedded as a data URI, so
nothing a template or a holder's name says can make the server read its own files.
"""

from __future__ import annotations

import base64
import logging
from functools import cache
from typing import Any

from flask import current_app, render_template

from qrsvc.qr import Style, encode, render

from .models import Event, Ticket

#: Pixels a module in the embedded PNG; printed at QR_WIDTH_MM it stays crisp (no smoothing).
_MODULE_PX = 8
#: Printed width of the code; ~0.7 mm a module for a typical ticket token, easy for phone cameras.
QR_WIDTH_MM = 55


@cache
def _fetcher_class() -> Any:
    # WeasyPrint is imported on first use: it costs a second of every worker's start-up.
    from weasyprint.urls import URLFetcher, URLFetchingError

    class DataOnlyFetcher(URLFetcher):  # type: ignore[misc]
        """Refuse every URL except inline `data:` URIs."""

        def __init__(self) -> None:
            super().__init__(allowed_protocols=("data",), allow_redirects=False)

        def fetch(self, url: str, headers: Any = None) -> Any:
            if not url.lower().startswith("data:"):
                raise URLFetchingError(f"blocked URL in a PDF: only data: URIs may be loaded ({url[:40]!r})")
            return super().fetch(url, headers)

    return DataOnlyFetcher


def data_only_fetcher() -> Any:
    """A WeasyPrint URL fetcher that loads `data:` URIs and refuses everything else."""
    return _fetcher_class()()


def qr_png(token: str) -> bytes:
    """The ticket's QR as a PNG with whole-pixel modules and a 4-module quiet zone."""
    symbol = encode(token, current_app.config["TICKETS_QR_EC"], None, current_app.config["ENGINE"])
    return render(symbol, "png", Style(size=(symbol.width + 8) * _MODULE_PX, quiet_zone=4))


def render_pdf(html: str) -> bytes:
    """Any HTML to PDF bytes, with the data-only fetcher and no base URL."""
    from weasyprint import HTML

    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    document = HTML(string=html, base_url=None, url_fetcher=data_only_fetcher())
    pdf: bytes = document.write_pdf()
    return pdf


def ticket_html(ticket: Ticket, event: Event) -> str:
    qr = "data:image/png;base64," + base64.b64encode(qr_png(ticket.token)).decode()
    return render_template(
        "tickets/ticket.html", ticket=ticket, event=event, qr_data_uri=qr, qr_width_mm=QR_WIDTH_MM
    )


def ticket_pdf(ticket: Ticket, event: Event) -> bytes:
    return render_pdf(ticket_html(ticket, event))


__all__ = ["data_only_fetcher", "qr_png", "render_pdf", "ticket_html", "ticket_pdf"]
