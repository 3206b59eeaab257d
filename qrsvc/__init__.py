"""qrsvc: a self-hosted QR code service. The core's public surface for integrations."""

from __future__ import annotations

from qrsvc.factory import create_app

__all__ = ["create_app"]
