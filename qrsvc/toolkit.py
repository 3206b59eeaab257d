"""The core's one public surface for integrations (besides `qrsvc.models` and `qrsvc.extensions`).

An integration makes and finds codes, parses requests, links to images, checks
keys and raises errors through the names below, never through the core's other
modules, so the core can change shape behind them (`lint-imports` holds the line).
"""

from __future__ import annotations

from datetime import datetime

from qrsvc import clock
from qrsvc.auth import current_key, require_key
from qrsvc.batch import iter_chunks, unique_filename
from qrsvc.clock import isoformat
from qrsvc.codes import MadeCode, find_codes, get_code, image_of, images_of, make_code, make_codes
from qrsvc.config import Setting, apply_settings
from qrsvc.db import add_migrations, insert
from qrsvc.dynamic import check_target, make_dynamic_codes
from qrsvc.errors import ApiError, NotFoundError
from qrsvc.fields import (
    UNSET,
    Parser,
    Unset,
    boolean,
    choice,
    given_fields,
    integer,
    invalid,
    iso_datetime,
    list_of,
    nested,
    nullable,
    number,
    object_schema,
    parse_object,
    text,
)
from qrsvc.http import parse_body, parse_query, read_json_object
from qrsvc.images import Image, make_image
from qrsvc.jobs import register as register_job
from qrsvc.jobs import stop_requested as job_stop_requested
from qrsvc.links import data_uri, image_url, images_base, public_url
from qrsvc.metrics import counter as metrics_counter
from qrsvc.metrics import gauge as metrics_gauge
from qrsvc.openapi import HTML, IMAGE_CONTENT, PDF, Operation, json_content, ref, register_operations
from qrsvc.options import QrOptions, check_options
from qrsvc.pagination import Page, PageQuery, paginate
from qrsvc.pdf import html_to_pdf, resource_url
from qrsvc.printing import (
    MIN_MODULE_MM,
    MM_PER_INCH,
    QUIET_ZONE,
    Box,
    CodeTooSmallError,
    DrawnCode,
    PlacedCode,
    PrintCost,
    PrintLimits,
    SheetLayout,
    check_cost,
    check_items,
    code_pixels,
    draw_code,
    find_layout,
    inches,
    module_dots,
    place_code,
    sheets,
)
from qrsvc.qr import ENGINES, ERROR_CORRECTION_LEVELS, DataTooLongError, Style, encode, render
from qrsvc.scan_counts import Counts as ScanCounts
from qrsvc.scan_counts import ScanStats, scan_stats
from qrsvc.transactions import after_commit, savepoint, transactional, unit_of_work


def now() -> datetime:
    """The one clock's time, looked up on every call: a test that freezes `qrsvc.clock.now` freezes this."""
    return clock.now()


__all__ = [
    "ENGINES",
    "HTML",
    "IMAGE_CONTENT",
    "PDF",
    "Operation",
    "ERROR_CORRECTION_LEVELS",
    "MIN_MODULE_MM",
    "MM_PER_INCH",
    "inches",
    "QUIET_ZONE",
    "UNSET",
    "ApiError",
    "Box",
    "CodeTooSmallError",
    "DataTooLongError",
    "DrawnCode",
    "Image",
    "MadeCode",
    "NotFoundError",
    "Page",
    "PageQuery",
    "Parser",
    "PlacedCode",
    "PrintCost",
    "PrintLimits",
    "QrOptions",
    "ScanCounts",
    "ScanStats",
    "Setting",
    "SheetLayout",
    "Style",
    "Unset",
    "add_migrations",
    "after_commit",
    "apply_settings",
    "boolean",
    "check_cost",
    "check_items",
    "check_options",
    "check_target",
    "choice",
    "code_pixels",
    "current_key",
    "data_uri",
    "draw_code",
    "encode",
    "find_codes",
    "find_layout",
    "get_code",
    "given_fields",
    "html_to_pdf",
    "image_of",
    "image_url",
    "images_base",
    "images_of",
    "insert",
    "integer",
    "invalid",
    "iso_datetime",
    "isoformat",
    "iter_chunks",
    "json_content",
    "list_of",
    "make_code",
    "make_codes",
    "make_dynamic_codes",
    "make_image",
    "job_stop_requested",
    "metrics_counter",
    "metrics_gauge",
    "module_dots",
    "nested",
    "now",
    "nullable",
    "number",
    "object_schema",
    "paginate",
    "parse_body",
    "parse_object",
    "parse_query",
    "place_code",
    "public_url",
    "read_json_object",
    "ref",
    "register_job",
    "register_operations",
    "render",
    "require_key",
    "resource_url",
    "savepoint",
    "scan_stats",
    "sheets",
    "text",
    "transactional",
    "unique_filename",
    "unit_of_work",
]
