"""Distributions of measured intervals, as the reports show them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentiles(values: Sequence[float], scale: float = 1e3) -> dict[str, float] | None:
    """p50/p90/p99/max (nearest rank) and count of `values` × `scale` (s → ms); None if empty."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(fraction: float) -> float:
        position = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
        return ordered[position] * scale

    return {
        "count": float(len(ordered)),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": ordered[-1] * scale,
    }
