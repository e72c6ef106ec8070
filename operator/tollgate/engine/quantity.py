"""Just enough Kubernetes quantity arithmetic to size a ResourceQuota and compare against a limit."""

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


_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def value(quantity: str) -> Decimal:
    """The number a quantity stands for: "500m" -> 0.5, "4Gi" -> 4294967296 (to compare quantities)."""
    match = _QUANTITY.match(quantity)
    if match is not None:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    match = _EXPONENT.match(quantity)
    if match is not None:
        return Decimal(match.group(1)) * Decimal(10) ** int(match.group(2))
    raise ValueError(f"not a quantity: {quantity!r}")
