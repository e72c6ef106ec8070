"""Just enough Kubernetes quantity arithmetic to size a ResourceQuota: multiply by a pod count."""

from __future__ import annotations

import re
from decimal import Decimal

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$")
_EXPONENT = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))[eE]([+-]?[0-9]+)$")


def _plain(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return text


def multiply(quantity: str, factor: int) -> str:
    """`quantity` times `factor`, keeping the unit suffix: ("4Gi", 3) -> "12Gi", ("500m", 3) -> "1500m"."""
    match = _QUANTITY.match(quantity)
    if match is not None:
        return _plain(Decimal(match.group(1)) * factor) + match.group(2)
    match = _EXPONENT.match(quantity)
    if match is not None:
        return _plain(Decimal(match.group(1)) * Decimal(10) ** int(match.group(2)) * factor)
    raise ValueError(f"not a quantity: {quantity!r}")
