"""Sandboxed HTML → PDF (`qrsvc.pdf`): data: URIs and in-memory resources load; disk and network never."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import weasyprint

from qrsvc.links import data_uri
from qrsvc.pdf import html_to_pdf, resource_url, url_fetcher
from qrsvc.qr import Style, encode, render

PAGE = '<html><body><img src="{}" style="width:60mm;image-rendering:pixelated"></body></html>'


def qr_png(text: str) -> bytes:
    return render(encode(text, "M", None, "zxing"), "png", Style(size=400))


@pytest.fixture
def secret_file(tmp_path: Path) -> str:
    """A local file an attacker would like to see in a PDF: a PNG holding a QR code."""
    path = tmp_path / "secret.png"
    path.write_bytes(qr_png("SECRET-FILE"))
    return path.as_uri()


@pytest.fixture
def web_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server serving a QR PNG for any path; records every request it gets."""
    requests: list[str] = []
    png = qr_png("FROM-THE-NETWORK")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/css" if self.path.endswith(".css") else "image/png")
            self.end_headers()
            self.wfile.write(b"body { background: red }" if self.path.endswith(".css") else png)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_an_image_inline_or_as_a_resource_is_drawn(decode: Callable[..., list[str]]) -> None:
    png = qr_png("INLINE")
    assert decode(html_to_pdf(PAGE.format(data_uri(png, "image/png"))), "pdf") == ["INLINE"]
    named = html_to_pdf(PAGE.format(resource_url("qr-0")), {resource_url("qr-0"): qr_png("RESOURCE")})
    assert decode(named, "pdf") == ["RESOURCE"]


def test_local_files_are_never_read(secret_file: str, decode: Callable[..., list[str]]) -> None:
    # Without the sandbox WeasyPrint reads the file: the test can see a leak.
    assert decode(weasyprint.HTML(string=PAGE.format(secret_file)).write_pdf(), "pdf") == ["SECRET-FILE"]
    for url in (secret_file, "FILE:" + secret_file.removeprefix("file:"), "secret.png", "/etc/hostname"):
        assert decode(html_to_pdf(PAGE.format(url)), "pdf") == []
    # Naming a file as a resource does not read it either: only the bytes handed in are served.
    assert decode(html_to_pdf(PAGE.format(secret_file), {resource_url("x"): b"other"}), "pdf") == []


def test_the_network_is_never_reached(
    web_server: tuple[str, list[str]], decode: Callable[..., list[str]]
) -> None:
    base, requests = web_server
    html = (
        f'<html><head><link rel="stylesheet" href="{base}/style.css"></head><body>'
        f'<img src="{base}/code.png" style="width:60mm">'
        f'<div style="background: url({base}/bg.png)">x</div></body></html>'
    )
    # Without the sandbox WeasyPrint fetches all three: the test can fail.
    assert decode(weasyprint.HTML(string=html).write_pdf(), "pdf") == ["FROM-THE-NETWORK"]
    assert len(requests) == 3
    requests.clear()
    assert decode(html_to_pdf(html), "pdf") == []
    assert requests == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "http://127.0.0.1:9/x.png",
        "https://example.com/x.png",
        "ftp://example.com/x",
        "data:text/plain,not-base64",
        "data:image/png;base64,not*base64",
        "resource:missing",
        "secret.png",
    ],
)
def test_the_fetcher_refuses_every_other_url(url: str) -> None:
    with pytest.raises(ValueError, match="only data: URIs"):
        url_fetcher({resource_url("known"): b"png"}).fetch(url)


def test_the_fetcher_serves_base64_data_uris_and_known_resources() -> None:
    fetcher = url_fetcher({resource_url("known"): b"\x89PNG\r\n\x1a\nrest"})
    assert fetcher.fetch("data:text/plain;base64," + base64.b64encode(b"hello").decode()).read() == b"hello"
    served = fetcher.fetch(resource_url("known"))
    assert (served.read(), served.content_type) == (b"\x89PNG\r\n\x1a\nrest", "image/png")
