"""The pure QR pipeline: options → symbol → image bytes. No Flask, no database."""

from __future__ import annotations

from qrsvc.qr.colors import Color, ColorError, contrast_ratio, parse_color
from qrsvc.qr.render import (
    CONTENT_TYPES,
    FORMATS,
    RENDERER_VERSION,
    Layout,
    RenderError,
    Style,
    layout,
    render,
)
from qrsvc.qr.symbols import (
    BYTE_CAPACITY,
    ENGINES,
    ERROR_CORRECTION_LEVELS,
    DataTooLongError,
    Symbol,
    encode,
)

__all__ = [
    "BYTE_CAPACITY",
    "CONTENT_TYPES",
    "ENGINES",
    "ERROR_CORRECTION_LEVELS",
    "FORMATS",
    "RENDERER_VERSION",
    "Color",
    "ColorError",
    "DataTooLongError",
    "Layout",
    "RenderError",
    "Style",
    "Symbol",
    "contrast_ratio",
    "encode",
    "layout",
    "parse_color",
    "render",
]
