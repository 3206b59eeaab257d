"""Printing the shop's records: shelf labels of products and the packing label of an order.

The cost of a PDF is known from the request, so both refuse an oversized one (413)
before they look anything up or draw anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app

from integrations.shop import catalog, orders
from integrations.shop.labels import documents
from integrations.shop.labels.layouts import LAYOUTS
from integrations.shop.labels.limits import LabelLimits, packing_cost, shelf_cost
from integrations.shop.models import Order
from qrsvc.models import ApiKey
from qrsvc.toolkit import check_cost, invalid

__all__ = ["SheetOptions", "label_limits", "packing_label_pdf", "shelf_labels_pdf"]


@dataclass(frozen=True, slots=True)
class SheetOptions:
    """How shelf labels are printed: the sheet, the first free label, calibration, dot grid."""

    layout: str = "avery-5160"
    start_at: int = 1
    offset_x_mm: float = 0.0
    offset_y_mm: float = 0.0
    dpi: int | None = None


def label_limits() -> LabelLimits:
    """The most work one label PDF may take, from the shop's settings."""
    config = current_app.config
    return LabelLimits(
        labels=config["LABEL_MAX_LABELS"],
        pages=config["LABEL_MAX_PAGES"],
        megapixels=config["LABEL_MAX_MEGAPIXELS"],
    )


def shelf_labels_pdf(owner: ApiKey, skus: Sequence[tuple[str, int]], options: SheetOptions) -> bytes:
    """A PDF of shelf labels for (SKU, copies) pairs of the owner's products, in order."""
    if options.layout not in LAYOUTS:
        raise invalid("layout", f"layout must be one of: {', '.join(LAYOUTS)}")
    limits = label_limits()
    cost = shelf_cost(
        options.layout,
        sum(copies for _sku, copies in skus),
        len({sku for sku, _copies in skus}),
        start_at=options.start_at,
        dpi=options.dpi,
    )
    check_cost(cost, limits.print_limits)
    return documents.render_shelf_labels(
        catalog.labels_for_products(owner, skus, max_labels=limits.labels),
        options.layout,
        start_at=options.start_at,
        offset_x_mm=options.offset_x_mm,
        offset_y_mm=options.offset_y_mm,
        dpi=options.dpi,
        limits=limits,
        engine=current_app.config["ENGINE"],
    )


def packing_label_pdf(owner: ApiKey, order_id: str, dpi: int = 203) -> tuple[Order, bytes]:
    """The owner's order and its one-page 4 × 6 in packing label."""
    limits = label_limits()
    check_cost(packing_cost(dpi), limits.print_limits)  # before the order is looked up
    order = orders.get_order(owner, order_id)
    pdf = documents.render_packing_label(
        orders.packing_label_for(order), dpi=dpi, engine=current_app.config["ENGINE"], limits=limits
    )
    return order, pdf
