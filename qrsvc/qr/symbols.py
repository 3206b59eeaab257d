"""Data → QR symbol (version, EC level, module matrix) behind one small interface.

Two engines produce the same kind of `Symbol`: zxing-cpp (C++ core, the default,
~0.3 ms a symbol) and the pure-Python `qrcode` package, kept as the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

ERROR_CORRECTION_LEVELS = ("L", "M", "Q", "H")

#: Bytes of 8-bit data that fit in a version-40 symbol at each EC level.
BYTE_CAPACITY = {"L": 2953, "M": 2331, "Q": 1663, "H": 1273}

#: No QR symbol holds more than 7089 characters (digits only, version 40-L).
MAX_CHARACTERS = 7089


@dataclass(frozen=True, slots=True)
class Symbol:
    """A QR symbol without quiet zone: `modules[y * width + x]` is 1 for a dark module."""

    version: int
    error_correction: str
    modules: bytes

    @property
    def width(self) -> int:
        return 17 + 4 * self.version


class DataTooLongError(ValueError):
    """The data does not fit in a version-40 symbol at the chosen EC level."""

    def __init__(self, length: int, error_correction: str) -> None:
        self.length = length
        self.error_correction = error_correction
        self.capacity = BYTE_CAPACITY[error_correction]
        super().__init__(
            f"data is {length} bytes of UTF-8 but at most {self.capacity} bytes fit "
            f"in a QR code at error correction level {error_correction}"
        )


def _encode_zxing(data: str, error_correction: str, min_version: int | None) -> Symbol:
    import zxingcpp

    def create(version: int | None) -> zxingcpp.Barcode:
        options: dict[str, object] = {"ec_level": error_correction}
        if not data.isascii():
            # Without an ECI, zint writes Latin-1 text as ISO-8859-1 bytes, which decoders
            # guess at: ten "é" read back as Shift_JIS kanji. ECI 26 says "UTF-8" outright.
            options["eci"] = UTF8_ECI
        if version is not None:
            options["version"] = version
        return zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.QRCode, **options)

    try:
        try:
            barcode = create(min_version)
        except ValueError:
            # zint treats `version` as exact; a minimum means "or larger when needed".
            if min_version is None:
                raise
            barcode = create(None)
    except ValueError as exc:
        raise DataTooLongError(len(data.encode("utf-8")), error_correction) from exc
    image = memoryview(cast(Any, barcode.to_image(scale=1, add_quiet_zones=False)))
    width = cast(tuple[int, int], image.shape)[0]
    # zxing-cpp draws dark modules as 0 and light as 255.
    modules = image.tobytes().translate(_ZXING_TO_MODULES)
    return Symbol(version=(width - 17) // 4, error_correction=error_correction, modules=modules)


#: The Extended Channel Interpretation number of UTF-8 (AIM ECI specification).
UTF8_ECI = 26

_ZXING_TO_MODULES = bytes([1] + [0] * 255)


def _encode_qrcode(data: str, error_correction: str, min_version: int | None) -> Symbol:
    import qrcode
    import qrcode.constants
    import qrcode.exceptions

    levels = {
        "L": qrcode.constants.ERROR_CORRECT_L,
        "M": qrcode.constants.ERROR_CORRECT_M,
        "Q": qrcode.constants.ERROR_CORRECT_Q,
        "H": qrcode.constants.ERROR_CORRECT_H,
    }
    code = qrcode.QRCode(version=min_version, error_correction=levels[error_correction], border=0)
    code.add_data(data)
    try:
        code.make(fit=True)
    except (qrcode.exceptions.DataOverflowError, ValueError) as exc:
        raise DataTooLongError(len(data.encode("utf-8")), error_correction) from exc
    modules = bytes(1 if dark else 0 for row in code.modules for dark in row)
    return Symbol(version=code.version, error_correction=error_correction, modules=modules)


ENGINES: dict[str, Callable[[str, str, int | None], Symbol]] = {
    "zxing": _encode_zxing,
    "qrcode": _encode_qrcode,
}


def encode(
    data: str,
    error_correction: str = "M",
    min_version: int | None = None,
    engine: str = "zxing",
) -> Symbol:
    """Encode text as the smallest QR symbol of at least `min_version` that holds it."""
    if error_correction not in ERROR_CORRECTION_LEVELS:
        raise ValueError(f"unknown error correction level {error_correction!r}")
    if len(data) > MAX_CHARACTERS:
        raise DataTooLongError(len(data.encode("utf-8")), error_correction)
    return ENGINES[engine](data, error_correction, min_version)
