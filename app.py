"""The composition root: the core plus its integrations. gunicorn serves `app:app`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from integrations import crm, shop, tickets
from qrsvc import create_app

INTEGRATIONS: tuple[Any, ...] = (tickets, shop, crm)


def create(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The whole service; tests call this with their own configuration."""
    return create_app(overrides, integrations=INTEGRATIONS)


app = create()
