"""Weights as the ledger reports them: in kilograms, rounded to the gram.

``rounded_kg`` is the number the reports give (JSON figures, shipment log cells); ``kg_text``
is that number with its unit, as anomaly details and the certificate write it (``120.0 kg``,
``119.55 kg``: the shortest decimal form, at least one decimal).
"""

from __future__ import annotations

from typing import overload


@overload
def rounded_kg(value: float) -> float: ...
@overload
def rounded_kg(value: None) -> None: ...
def rounded_kg(value: float | None) -> float | None:
    """``value`` rounded to the gram (3 decimals); None stays None."""
    return None if value is None else round(value, 3)


def kg_text(value: float) -> str:
    """``value`` rounded to the gram, with its unit: ``120.0 kg``, ``119.55 kg`` (``0.0 kg`` for
    the integer 0 of an empty sum)."""
    return f"{rounded_kg(float(value))} kg"
