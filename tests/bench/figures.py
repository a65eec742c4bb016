"""How the benchmarks print a figure over several runs: min / median / max,
and the same for its ratios to a baseline."""

from __future__ import annotations

import statistics


def spread(values) -> str:
    return (f"{min(values):6.1f} / {statistics.median(values):6.1f} / "
            f"{max(values):6.1f}")


def ratio_spread(values) -> str:
    return (f"x{min(values):.2f} / x{statistics.median(values):.2f} / "
            f"x{max(values):.2f}")
