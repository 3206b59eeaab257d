"""Bulk generation: `POST /v1/qr/batch` parsed (`items`), run (`generation`) and written out (`bodies`)."""

from __future__ import annotations

from qrsvc.batch.bodies import Outcome, item_json, iter_chunks, safe_stem, unique_filename
from qrsvc.batch.generation import CONTENT_TYPES, BatchOutput, generate_batch
from qrsvc.batch.items import (
    MAX_FILENAME,
    MAX_ITEMS_HEADER,
    RESPONSE_FORMS,
    BatchItem,
    BatchRequest,
    defaults_spec,
    item_spec_of,
    parse_batch,
)

__all__ = [
    "CONTENT_TYPES",
    "MAX_FILENAME",
    "MAX_ITEMS_HEADER",
    "RESPONSE_FORMS",
    "BatchItem",
    "BatchOutput",
    "BatchRequest",
    "Outcome",
    "defaults_spec",
    "generate_batch",
    "item_json",
    "item_spec_of",
    "iter_chunks",
    "parse_batch",
    "safe_stem",
    "unique_filename",
]
