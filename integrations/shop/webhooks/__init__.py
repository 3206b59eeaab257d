"""Store webhooks (no API key: the platform's signature is the credential).

`protocol` is what every platform shares (signature, de-duplication, receipt);
`shopify` and `woocommerce` map their own payloads; `payloads` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from integrations.shop.webhooks import shopify, woocommerce
from integrations.shop.webhooks.protocol import Platform

__all__ = ["PLATFORMS"]

#: The platforms by the name in `/v1/shop/webhooks/<platform>/<topic>`.
PLATFORMS: Mapping[str, Platform] = MappingProxyType(
    {platform.name: platform for platform in (shopify.PLATFORM, woocommerce.PLATFORM)}
)
