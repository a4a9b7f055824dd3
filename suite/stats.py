"""The one place the suite computes a mean and a standard deviation over runs.

The std is the population std (ddof 0, numpy's default), as the original reported it. Values may
be missing (None: e.g. a group without cases); they are left out, and no value at all gives None.
"""
from __future__ import annotations

import math
from typing import Sequence


def mean_and_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    defined = [float(v) for v in values if v is not None]
    if not defined:
        return None, None
    mean = sum(defined) / len(defined)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in defined) / len(defined))


def mean_defined(values: Sequence[float | None]) -> float | None:
    return mean_and_std(values)[0]
