"""The composition root: the core plus its integrations, built by `create()`.

Importing this module builds nothing: no app, no `instance/` folder, no log handlers,
no environment read. `qrsvc serve` runs gunicorn on `app:create()`; `app:app` still
works for other servers, built on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from integrations import shop, tickets
from qrsvc import create_app

INTEGRATIONS: tuple[Any, ...] = (tickets, shop)


def create(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The whole service; tests call this with their own configuration."""
    return create_app(overrides, integrations=INTEGRATIONS)


def __getattr__(name: str) -> Any:
    """`app.app`, for servers given `app:app`: the service from the environment, made once when asked for."""
    if name == "app":
        application = globals()["app"] = create()
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["INTEGRATIONS", "create"]
