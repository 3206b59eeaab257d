"""The QR request parameters, from a JSON body or a query string: `QrOptions` and their rules.

Types, defaults and bounds of the QR parameters live here and nowhere else; the
field parsers and the unknown-field rule are `qrsvc.fields`' (a typo such as
`error_corection` must not silently fall back to a default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from qrsvc import fields
from qrsvc.errors import ApiError
from qrsvc.qr import ERROR_CORRECTION_LEVELS, FORMATS, Color, ColorError, Style, parse_color
from qrsvc.qr.colors import BLACK, MIN_CONTRAST, WHITE, contrast_ratio, is_inverted
from qrsvc.qr.render import ALPHA_FORMATS
from qrsvc.qr.symbols import MAX_CHARACTERS, DataTooLongError


@dataclass(frozen=True, slots=True)
class Bounds:
    """Limits that come from configuration rather than from the QR standard."""

    min_size: int = 64
    max_size: int = 4096


@dataclass(frozen=True, slots=True)
class QrOptions:
    """A validated request for one code: what to encode and how to draw it."""

    data: str
    format: str = "png"
    size: int = 512
    error_correction: str = "M"
    foreground: Color = BLACK
    background: Color = WHITE
    quiet_zone: int = 4
    version: int | None = None
    allow_low_contrast: bool = False

    @property
    def style(self) -> Style:
        return Style(self.size, self.quiet_zone, self.foreground, self.background)

    def stored(self) -> dict[str, Any]:
        """The drawing options as kept with a stored code (and hashed for de-duplication)."""
        return {
            "format": self.format,
            "size": self.size,
            "error_correction": self.error_correction,
            "foreground": self.foreground.hex,
            "background": "transparent" if self.background.a == 0 else self.background.hex,
            "quiet_zone": self.quiet_zone,
            "version": self.version,
            "allow_low_contrast": self.allow_low_contrast,
        }

    @classmethod
    def from_stored(cls, data: str, stored: Mapping[str, Any]) -> QrOptions:
        return cls(
            data=data,
            format=stored["format"],
            size=stored["size"],
            error_correction=stored["error_correction"],
            foreground=parse_color(stored["foreground"]),
            background=parse_color(stored["background"], allow_transparent=True),
            quiet_zone=stored["quiet_zone"],
            version=stored["version"],
            allow_low_contrast=stored.get("allow_low_contrast", False),
        )


#: A field parser (`qrsvc.fields.Parser`) of any result type.
Parser = fields.Parser[Any]


def color(*, allow_transparent: bool) -> fields.Parser[Color]:
    def parse(name: str, value: object, from_query: bool) -> Color:
        if not isinstance(value, str):
            raise fields.invalid(name, f"{name} must be a colour string such as #1a1a1a")
        try:
            return parse_color(value, allow_transparent=allow_transparent)
        except ColorError as exc:
            extra = " or transparent" if allow_transparent else ""
            raise fields.invalid(name, f"{name}: {exc}{extra}") from None

    colours = "#rgb, #rrggbb or #rrggbbaa (the # may be left out in a query string)"
    return fields.described(
        parse,
        {
            "type": "string",
            "description": colours + (", or transparent" if allow_transparent else ""),
            "examples": ["#1a1a1a"],
        },
    )


@dataclass(frozen=True, slots=True)
class Spec:
    """Which fields a request may carry: the QR options plus endpoint-specific extras."""

    bounds: Bounds = field(default_factory=Bounds)
    extra: Mapping[str, Parser] = field(default_factory=dict)
    #: Fields read elsewhere (e.g. `api_key` in a query string) that are not errors.
    ignored: frozenset[str] = frozenset({"api_key"})
    #: False for endpoints whose parameters are only `extra` (pagination, say).
    qr_fields: bool = True

    def parsers(self) -> dict[str, Parser]:
        if not self.qr_fields:
            return dict(self.extra)
        return {
            "data": fields.text(),
            "format": fields.choice(FORMATS),
            "size": fields.integer(self.bounds.min_size, self.bounds.max_size),
            "error_correction": fields.choice(ERROR_CORRECTION_LEVELS, upper=True),
            "foreground": color(allow_transparent=False),
            "background": color(allow_transparent=True),
            "quiet_zone": fields.integer(0, 20),
            "version": fields.integer(1, 40),
            "allow_low_contrast": fields.boolean(),
            **self.extra,
        }


def parse_fields(source: Mapping[str, object], spec: Spec, *, from_query: bool = False) -> dict[str, object]:
    """Type-check every field of `source` against `spec`; unknown fields are a 400."""
    return fields.parse_mapping(source, spec.parsers(), from_query=from_query, ignored=spec.ignored)


_OPTION_FIELDS = frozenset(QrOptions.__dataclass_fields__)


def build_options(values: Mapping[str, object], *, base: QrOptions | None = None) -> QrOptions:
    """Make checked values into QrOptions and apply the rules that span fields (422s)."""
    chosen = {k: v for k, v in values.items() if k in _OPTION_FIELDS}
    if base is not None:
        options = replace(base, **chosen)  # type: ignore[arg-type]
    else:
        if "data" not in chosen:
            raise ApiError(400, "missing_parameter", "data is required", field="data")
        options = QrOptions(**chosen)  # type: ignore[arg-type]
    check_options(options)
    return options


def check_options(options: QrOptions) -> None:
    """Refuse requests that are well-formed but cannot make a scannable code."""
    if options.data == "":
        raise ApiError(400, "invalid_parameter", "data must not be empty", field="data")
    if len(options.data) > MAX_CHARACTERS:
        error = DataTooLongError(len(options.data.encode("utf-8")), options.error_correction)
        raise ApiError(422, "data_too_long", str(error), field="data")
    if options.format not in ALPHA_FORMATS:
        for name in ("foreground", "background"):
            if not getattr(options, name).opaque:
                raise ApiError(
                    422,
                    "transparency_unsupported",
                    f"{options.format} has no transparency: give an opaque {name} or use png, webp or svg",
                    field=name,
                )
    if not options.allow_low_contrast:
        if is_inverted(options.foreground, options.background):
            raise ApiError(
                422,
                "low_contrast",
                "foreground is lighter than background; many scanners cannot read inverted "
                "codes (set allow_low_contrast to force)",
                field="foreground",
            )
        ratio = contrast_ratio(options.foreground, options.background)
        if ratio < MIN_CONTRAST:
            raise ApiError(
                422,
                "low_contrast",
                f"contrast between foreground and background is {ratio:.2f}:1, below the "
                f"{MIN_CONTRAST:g}:1 scanners need (set allow_low_contrast to force)",
                field="foreground",
            )


def parse_options(
    source: Mapping[str, object], spec: Spec, *, from_query: bool = False
) -> tuple[QrOptions, dict[str, object]]:
    """Parse a whole request: (the code's options, the endpoint's extra fields)."""
    values = parse_fields(source, spec, from_query=from_query)
    extras = {k: v for k, v in values.items() if k in spec.extra}
    return build_options(values), extras


__all__ = [
    "Bounds",
    "Parser",
    "QrOptions",
    "Spec",
    "build_options",
    "check_options",
    "parse_fields",
    "parse_options",
]
