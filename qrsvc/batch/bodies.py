"""Where a batch's images go as they are drawn: into a ZIP at once, or a JSON body within its byte limit.

The body is written to a spooled temporary file (memory up to 8 MB, then disk) and
streamed from there, so a batch never holds all its images at once.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from qrsvc import dynamic
from qrsvc.batch.items import BatchItem
from qrsvc.errors import ApiError
from qrsvc.images import Image
from qrsvc.models import QrCode

#: Bodies up to this size stay in memory; larger ones go to a temporary file.
_SPOOL_BYTES = 8 * 1024 * 1024
_UNSAFE = re.compile(r"[^\w.-]+")
_WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{p}{n}" for p in ("com", "lpt") for n in range(1, 10)]
)
_ZIP_COMPRESSED = frozenset({"svg"})  # PNG, JPEG, WebP and our PDFs are compressed already


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item's result: its stored code, or the error that stopped it."""

    item: BatchItem
    code: QrCode | None = None
    error: ApiError | None = None


class BatchBody:
    """Where rendered images go as they are drawn, and how the finished body is written."""

    def __init__(self, response: str, image_url: Callable[[QrCode], str], max_inline_bytes: int) -> None:
        self.response = response
        self.image_url = image_url
        self.max_inline_bytes = max_inline_bytes
        self.file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 (returned open)
        self._inline: dict[int, bytes] = {}
        self._inline_bytes = 0
        self._names: dict[int, str] = {}
        self._used: set[str] = set()
        self._archive = zipfile.ZipFile(self.file, "w") if response == "zip" else None

    @property
    def needs_images(self) -> bool:
        return self.response != "url"

    def add(self, item: BatchItem, image: Image, when: datetime) -> None:
        """Take one image: into the ZIP at once, or kept for the JSON body within its byte limit."""
        if self._archive is not None:
            fmt = image.options.format
            name = _unique_name(item, fmt, self._used)
            self._names[item.index] = name
            entry = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED if fmt in _ZIP_COMPRESSED else zipfile.ZIP_STORED
            self._archive.writestr(entry, image.content)
        elif self.response == "json":
            self._inline_bytes += 4 * -(-len(image.content) // 3) + _ITEM_OVERHEAD  # base64, rounded up
            if self._inline_bytes > self.max_inline_bytes:
                raise ApiError(
                    413,
                    "response_too_large",
                    f"the images of this batch are more than {self.max_inline_bytes} bytes as base64; "
                    'ask for "response": "url" (image URLs) or "zip" (a ZIP archive), '
                    "or split the batch",
                    field="response",
                )
            self._inline[item.index] = image.content

    def finish(self, outcomes: Sequence[Outcome], when: datetime) -> IO[bytes]:
        """Write what follows the images (the JSON, or the ZIP's manifest) and rewind."""
        failed = sum(1 for outcome in outcomes if outcome.error is not None)
        if self._archive is not None:
            manifest = []
            for outcome in outcomes:
                entry = item_json(outcome, self.image_url)
                entry["filename"] = self._names.get(outcome.item.index)
                if not entry["success"]:
                    entry["data"] = outcome.item.data
                manifest.append(entry)
            document = {"count": len(outcomes), "failed": failed, "items": manifest}
            info = zipfile.ZipInfo("manifest.json", date_time=when.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            self._archive.writestr(info, json.dumps(document, indent=1))
            self._archive.close()
        else:
            head = {"success": True, "count": len(outcomes), "failed": failed}
            self.file.write(json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"items":[')
            for position, outcome in enumerate(outcomes):
                if position:
                    self.file.write(b",")
                image = self._inline.pop(outcome.item.index, None)
                self.file.write(json.dumps(item_json(outcome, self.image_url, image=image)).encode())
            self.file.write(b"]}\n")
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
        self.file.close()


#: Bytes an inline item adds around its base64 (id, data, URL, …), for the byte limit.
_ITEM_OVERHEAD = 200


def item_json(
    outcome: Outcome, image_url: Callable[[QrCode], str], *, image: bytes | None = None
) -> dict[str, Any]:
    """One item of the response: the code, or the error that stopped it, with its input index."""
    item = outcome.item
    if outcome.code is None:
        error = outcome.error or ApiError(500, "internal_error", "item was not processed")
        return {"index": item.index, **error.to_dict()}
    code = outcome.code
    body = {
        "index": item.index,
        "success": True,
        "id": code.id,
        "data": code.data,
        "format": code.options["format"],
        "version": code.version,
        "image_url": image_url(code),
    }
    if item.filename is not None:
        body["filename"] = item.filename
    if code.dynamic is not None:
        body["dynamic"] = dynamic.describe(code)
    if image is not None:
        body["image_base64"] = base64.b64encode(image).decode()
    return body


def _unique_name(item: BatchItem, fmt: str, used: set[str]) -> str:
    """A sanitised file name for the item's image, unique (regardless of case) among `used`."""
    stem = safe_stem(item.filename, fmt) or f"qr-{item.index:04d}"
    name, number = f"{stem}.{fmt}", 2
    while name.casefold() in used:
        name, number = f"{stem}-{number}.{fmt}", number + 1
    used.add(name.casefold())
    return name


def safe_stem(filename: str | None, fmt: str) -> str:
    """The last path component, without our extension, in letters, digits, `.`, `-` and `_` only.

    `../../etc/passwd` becomes `passwd`; an empty or device-like result (`CON`) becomes "".
    """
    if not filename:
        return ""
    stem = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    for extension in {f".{fmt}", ".jpg" if fmt == "jpeg" else f".{fmt}"}:
        if stem.lower().endswith(extension):
            stem = stem[: -len(extension)]
    stem = _UNSAFE.sub("_", stem).strip("._ ")[:100].rstrip("._ ")
    if stem.split(".", 1)[0].lower() in _WINDOWS_DEVICES:
        return ""
    return stem


def iter_chunks(body: IO[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    """Stream a body and close it when done (the response also closes it if the client leaves early)."""
    with body:
        while chunk := body.read(size):
            yield chunk


__all__ = ["BatchBody", "Outcome", "item_json", "iter_chunks", "safe_stem"]
