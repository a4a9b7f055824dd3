"""The one place the suite computes statistics over runs.

- `mean_and_std`: mean and population std (ddof 0, numpy's default), as the original reported it.
  Values may be missing (None: e.g. a group without cases); they are left out, none at all gives None.
- `summarize`: that, plus n and the 95 % confidence interval of the mean (Student t, from the
  sample std), which needs 2 runs; with fewer it is None ("n/a" in tables, never NaN).
- `compare`: the difference of two groups' means with Welch's t-test (unequal variances) and
  Hedges' g (the standardised difference, corrected for small samples); `holm` adjusts the p-values
  of a family of comparisons (Holm's step-down method, written here because scipy has none).
- `printed`, `printed_difference`, `best_of` and `Summary.contains`: the marks a table sets beside its
  numbers (the best one in bold, the paper's number inside our interval, a difference) are decided on
  the numbers exactly as that table prints them (`digits` decimals), never on the unrounded values,
  so that every mark agrees with what its reader sees (two means printed alike are both the best; a
  bound printed equal to the paper's number holds it inside).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from decimal import Decimal
from typing import Hashable, Mapping, Sequence, TypeVar

CONFIDENCE = 0.95
Key = TypeVar("Key", bound=Hashable)


def printed(value: float, digits: int) -> Decimal:
    """`value` exactly as printed with `digits` decimals (f"{value:.{digits}f}"); zero has no sign."""
    number = Decimal(f"{value:.{digits}f}")
    return number.copy_abs() if number.is_zero() else number


def printed_difference(a: float, b: float, digits: int) -> Decimal:
    """a - b as a reader computes it from the two printed numbers (exact, `digits` decimals)."""
    return printed(a, digits) - printed(b, digits)


def best_of(means: Mapping[Key, float | None], digits: int) -> set[Key]:
    """The keys whose mean, printed with `digits` decimals, is the largest printed (ties all best);
    none unless at least two keys have a mean."""
    shown = {key: printed(mean, digits) for key, mean in means.items() if mean is not None}
    if len(shown) < 2:
        return set()
    top = max(shown.values())
    return {key for key, value in shown.items() if value == top}


def mean_and_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    defined = [float(v) for v in values if v is not None]
    if not defined:
        return None, None
    mean = sum(defined) / len(defined)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in defined) / len(defined))


def mean_defined(values: Sequence[float | None]) -> float | None:
    return mean_and_std(values)[0]


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None  # population std (ddof 0), the paper's
    ci_low: float | None  # 95 % confidence interval of the mean (Student t); None below 2 runs
    ci_high: float | None

    def interval_text(self, digits: int = 2) -> str:
        return "n/a" if self.ci_low is None else f"{self.ci_low:.{digits}f}–{self.ci_high:.{digits}f}"

    def count_text(self, runs: int | None = None) -> str:
        """n=k, or n=k/runs while runs are missing."""
        return f"n={self.n}" if runs is None or self.n >= runs else f"n={self.n}/{runs}"

    def text(self, runs: int | None = None, digits: int = 2) -> str:
        """`mean ± std (n=k; CI low–high)` as every report prints a group of runs; "missing" without runs."""
        if not self.n:
            return "missing"
        return (f"{self.mean:.{digits}f} ± {self.std:.{digits}f} ({self.count_text(runs)}; "
                f"CI {self.interval_text(digits)})")

    def contains(self, value: float | None, digits: int = 2) -> bool | None:
        """Whether `value` lies inside the interval, both printed with `digits` decimals as
        `interval_text(digits)` prints the interval (None when there is no interval or no value)."""
        if value is None or self.ci_low is None:
            return None
        return printed(self.ci_low, digits) <= printed(value, digits) <= printed(self.ci_high, digits)


def summarize(values: Sequence[float | None]) -> Summary:
    from scipy import stats

    defined = [float(v) for v in values if v is not None]
    mean, std = mean_and_std(defined)
    if len(defined) < 2:
        return Summary(len(defined), mean, std, None, None)
    standard_error = std / math.sqrt(len(defined) - 1)  # the sample std over sqrt(n), from the population std
    half = stats.t.ppf((1 + CONFIDENCE) / 2, len(defined) - 1) * standard_error
    return Summary(len(defined), mean, std, float(mean - half), float(mean + half))


@dataclass(frozen=True)
class Comparison:
    difference: float  # mean(a) - mean(b)
    p: float | None  # Welch's two-sided p-value; None when both groups are constant
    hedges_g: float | None  # None when both groups are constant
    p_holm: float | None = None  # set by `holm` over the comparisons of one table


def compare(a: Sequence[float], b: Sequence[float]) -> Comparison | None:
    """Group a against group b; None unless both have at least 2 runs."""
    from scipy import stats

    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) < 2 or len(b) < 2:
        return None
    difference = sum(a) / len(a) - sum(b) / len(b)
    var_a, var_b = (sum((v - sum(x) / len(x)) ** 2 for v in x) / (len(x) - 1) for x in (a, b))
    pooled = math.sqrt(((len(a) - 1) * var_a + (len(b) - 1) * var_b) / (len(a) + len(b) - 2))
    if pooled == 0:
        return Comparison(difference, None, None)
    with warnings.catch_warnings():  # runs (nearly) alike: scipy's notice of lost precision, not the user's business
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    correction = 1 - 3 / (4 * (len(a) + len(b)) - 9)
    return Comparison(difference, p, correction * difference / pooled)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values, in the given order (None stays None and does not count)."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        adjusted[i] = running
    return adjusted
