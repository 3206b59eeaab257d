"""HTML to PDF with WeasyPrint, sandboxed: a document loads nothing from disk or the network.

The only URLs a document may load are base64 `data:` URIs and the in-memory
`resources` handed in with it; `file:`, `http(s):`, relative paths and everything
else are refused (WeasyPrint then leaves the image or stylesheet out). So a name
typed by a customer, printed on a ticket or label, can never make the server read
its own files or reach another host. WeasyPrint is imported on first use: it costs
a second of every worker's start-up.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from collections.abc import Mapping
from typing import Any

#: Scheme of the in-memory resources a document names: `<img src="resource:qr-0">`.
RESOURCE_SCHEME = "resource"

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
    (b"<svg", "image/svg+xml"),
    (b"<?xml", "image/svg+xml"),
)


class BlockedUrlError(ValueError):
    """A document asked for a URL outside its sandbox."""


def _content_type(content: bytes) -> str:
    """What an in-memory resource is, from its first bytes (WeasyPrint tells SVG from raster by it)."""
    for magic, kind in _SIGNATURES:
        if content.startswith(magic):
            return kind
    return "application/octet-stream"


def _decode_data_uri(url: str) -> tuple[bytes, str] | None:
    """`data:<type>;base64,<payload>` as (bytes, type); None for anything else (plain-text data: too)."""
    scheme, _, rest = url.partition(":")
    meta, comma, payload = rest.partition(",")
    if scheme.lower() != "data" or not comma or not meta.lower().endswith(";base64"):
        return None
    try:
        return base64.b64decode(payload, validate=True), meta[: -len(";base64")] or "text/plain"
    except (ValueError, binascii.Error):
        return None


@functools.cache
def _fetcher_class() -> type[Any]:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class SandboxFetcher(URLFetcher):  # type: ignore[misc]
        """Serves base64 `data:` URIs and the document's own resources; refuses every other URL."""

        def __init__(self, resources: Mapping[str, bytes]) -> None:
            super().__init__(allowed_protocols=("data", RESOURCE_SCHEME), allow_redirects=False)
            self._resources = dict(resources)

        def fetch(self, url: str, headers: Any = None) -> Any:
            content = self._resources.get(url)
            if content is not None:
                return URLFetcherResponse(url, content, {"Content-Type": _content_type(content)})
            decoded = _decode_data_uri(url)
            if decoded is not None:
                return URLFetcherResponse(url, decoded[0], {"Content-Type": decoded[1]})
            raise BlockedUrlError(
                f"a PDF may load only data: URIs (base64) and its own resources, not {url[:60]!r}"
            )

    return SandboxFetcher


def url_fetcher(resources: Mapping[str, bytes] | None = None) -> Any:
    """The sandboxed WeasyPrint URL fetcher (`html_to_pdf` uses it; tests call its `fetch`)."""
    return _fetcher_class()(resources or {})


def resource_url(name: str) -> str:
    """How a document names one of its in-memory resources: `resource:<name>`."""
    return f"{RESOURCE_SCHEME}:{name}"


def html_to_pdf(html: str, resources: Mapping[str, bytes] | None = None) -> bytes:
    """PDF bytes of `html`; `resources` maps URLs the document uses (`resource_url(...)`) to bytes.

    Large documents should pass images as resources rather than `data:` URIs:
    WeasyPrint parses a few hundred inline URIs slowly.
    """
    from weasyprint import HTML

    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    document = HTML(string=html, base_url=None, url_fetcher=url_fetcher(resources))
    pdf: bytes = document.write_pdf()
    return pdf


__all__ = ["RESOURCE_SCHEME", "BlockedUrlError", "html_to_pdf", "resource_url", "url_fetcher"]
