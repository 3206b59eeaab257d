"""Printable tickets: WeasyPrint PDFs that scan, escape what holders type, and read no local file."""

from __future__ import annotations

import base64
import io

import pypdfium2
import pytest
from PIL import Image

from qrsvc.qr import Style, encode, render


def pdf_text(content: bytes) -> str:
    document = pypdfium2.PdfDocument(content)
    try:
        page = document[0]
        text = page.get_textpage().get_text_range()
        page.close()
        return str(text)
    finally:
        document.close()


def test_ticket_pdf_scans_to_exactly_the_token(client, manager, make_event, issue, decode) -> None:
    event = make_event(name="Opera Gala", venue="Grand Theatre")
    ticket = issue(event["id"], holder_name="Grace Hopper", seat="K21", tier="Balcony")
    response = client.get(f"/v1/tickets/{ticket['id']}/pdf", headers=manager)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert decode(response.data, "pdf") == [ticket["token"]]
    text = pdf_text(response.data)
    for expected in ("Opera Gala", "Grand Theatre", "Grace Hopper", "K21", "Balcony", ticket["id"]):
        assert expected in text


def test_ticket_pdf_needs_the_owners_key(client, ticket, scanner) -> None:
    assert client.get(f"/v1/tickets/{ticket['id']}/pdf").status_code == 401
    assert client.get(f"/v1/tickets/{ticket['id']}/pdf", headers=scanner).status_code == 403


def test_holder_markup_is_escaped_not_run(app, client, manager, event, issue) -> None:
    from integrations.tickets import events, issuance, pdf

    name = '<script>alert(1)</script><img src="file:///etc/hostname">'
    ticket = issue(event["id"], holder_name=name)
    with app.test_request_context():
        html = pdf.ticket_html(
            issuance.get_ticket(_key(app, manager), ticket["id"]),
            events.get_event(_key(app, manager), event["id"]),
        )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<img src="file:' not in html
    response = client.get(f"/v1/tickets/{ticket['id']}/pdf", headers=manager)
    assert "<script>alert(1)</script>" in pdf_text(response.data)  # shown as text


def _key(app, headers):
    from qrsvc.keys import find_key

    return find_key(headers["Authorization"].removeprefix("Bearer "))


@pytest.fixture
def secret_qr_png(tmp_path) -> tuple[str, bytes]:
    """A local file an attacker would like to see in a PDF: a PNG holding a QR code."""
    content = render(encode("SECRET-FILE-CONTENT", "M", None, "zxing"), "png", Style(size=400))
    path = tmp_path / "secret.png"
    path.write_bytes(content)
    return path.as_uri(), content


def test_the_pdf_fetcher_reads_data_uris_but_no_local_files(app, secret_qr_png, decode) -> None:
    from qrsvc.pdf import html_to_pdf, url_fetcher

    file_uri, content = secret_qr_png
    data_uri = "data:image/png;base64," + base64.b64encode(content).decode()
    page = '<html><body><img src="{}" style="width:60mm;image-rendering:pixelated"></body></html>'
    with app.app_context():
        # The same page with the image inline renders the code: the test can see a leak.
        assert decode(html_to_pdf(page.format(data_uri)), "pdf") == ["SECRET-FILE-CONTENT"]
        for url in (file_uri, "secret.png", "http://127.0.0.1:9/x.png"):
            leaked = html_to_pdf(page.format(url))
            assert decode(leaked, "pdf") == []
        stylesheet = f'<html><head><link rel="stylesheet" href="{file_uri}"></head><body>x</body></html>'
        assert html_to_pdf(stylesheet).startswith(b"%PDF")
    with pytest.raises(Exception, match="only data: URIs"):
        url_fetcher().fetch(file_uri)


def test_the_embedded_code_has_whole_pixel_modules(app, ticket) -> None:
    from integrations.tickets import pdf

    with app.app_context():
        png = pdf.qr_png(ticket["token"])
        symbol = encode(ticket["token"], app.config["TICKETS_QR_EC"], None, app.config["ENGINE"])
    with Image.open(io.BytesIO(png)) as image:
        assert image.width == image.height == (symbol.width + 8) * 8
