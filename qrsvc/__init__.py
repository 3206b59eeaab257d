"""qrsvc: a self-hosted QR code service.

Importing `qrsvc` (or `qrsvc.client`, `qrsvc.qr`) does not import Flask; the app
factory is loaded on first use of `qrsvc.create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qrsvc.factory import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from qrsvc.factory import create_app

        return create_app
    raise AttributeError(name)
