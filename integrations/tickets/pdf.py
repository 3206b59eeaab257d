"""Printable tickets: an autoescaped template rendered to PDF by the toolkit's sandboxed `html_to_pdf`.

The QR is drawn by the core's pure pipeline at whole-pixel modules and embedded as a
`data:` URI; the sandbox loads nothing else, so nothing a template or a holder's name
says can make the server read its own files or reach the network.
"""

from __future__ import annotations

from flask import current_app, render_template

from qrsvc.toolkit import Style, data_uri, encode, html_to_pdf, render

from .models import Event, Ticket

#: Pixels a module in the embedded PNG; printed at QR_WIDTH_MM it stays crisp (no smoothing).
_MODULE_PX = 8
#: Printed width of the code; ~0.7 mm a module for a typical ticket token, easy for phone cameras.
QR_WIDTH_MM = 55


def qr_png(token: str) -> bytes:
    """The ticket's QR as a PNG with whole-pixel modules and a 4-module quiet zone."""
    symbol = encode(token, current_app.config["TICKETS_QR_EC"], None, current_app.config["ENGINE"])
    return render(symbol, "png", Style(size=(symbol.width + 8) * _MODULE_PX, quiet_zone=4))


def ticket_html(ticket: Ticket, event: Event) -> str:
    qr = data_uri(qr_png(ticket.token), "image/png")
    return render_template(
        "tickets/ticket.html", ticket=ticket, event=event, qr_data_uri=qr, qr_width_mm=QR_WIDTH_MM
    )


def ticket_pdf(ticket: Ticket, event: Event) -> bytes:
    return html_to_pdf(ticket_html(ticket, event))


__all__ = ["qr_png", "ticket_html", "ticket_pdf"]
