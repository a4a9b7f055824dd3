"""Statistics over runs, against values computed by hand (t quantiles from printed tables)."""
from __future__ import annotations

import math

import pytest

from suite.stats import compare, holm, mean_and_std, summarize

T_975 = {3: 3.182446305, 4: 2.776445105, 14: 2.144786688}  # Student t, two-sided 95 %, by degrees of freedom


def test_summary_is_mean_population_std_and_a_student_t_interval():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert (s.n, s.mean, s.std) == (4, 2.5, pytest.approx(math.sqrt(1.25)))
    half = T_975[3] * math.sqrt(5 / 3) / 2  # sample std sqrt(5/3), over sqrt(4)
    assert (s.ci_low, s.ci_high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    assert s.contains(0.5) and not s.contains(4.6) and s.contains(None) is None
    fifteen = summarize([40.0 + (i % 5) for i in range(15)])  # the paper's 15 runs: 3 each of 40..44
    assert fifteen.ci_high - fifteen.mean == pytest.approx(T_975[14] * math.sqrt(30 / 14) / math.sqrt(15))


@pytest.mark.parametrize("values", [[], [7.0], [None, 7.0]])
def test_fewer_than_two_runs_have_no_interval(values):
    s = summarize(values)
    assert s.ci_low is None and s.ci_high is None and s.contains(7.0) is None
    assert (s.mean, s.std) == ((7.0, 0.0) if s.n else (None, None))


def test_missing_values_are_left_out_of_every_mean():
    assert mean_and_std([None, 2.0, 4.0]) == (3.0, 1.0)
    assert summarize([None, 2.0, 4.0]).n == 2


def test_welch_test_and_hedges_g_by_hand():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    result = compare(a, b)
    var_a, var_b = 5 / 3, 10.0
    t = (2.5 - 6.0) / math.sqrt(var_a / 4 + var_b / 5)
    dof = (var_a / 4 + var_b / 5) ** 2 / ((var_a / 4) ** 2 / 3 + (var_b / 5) ** 2 / 4)  # Welch-Satterthwaite
    assert t == pytest.approx(-2.2514363) and dof == pytest.approx(5.5207877)
    assert result.difference == -3.5 and result.p == pytest.approx(0.0691336, rel=1e-5)  # two-sided, t(5.52)
    pooled = math.sqrt((3 * var_a + 4 * var_b) / 7)
    assert result.hedges_g == pytest.approx((1 - 3 / 27) * -3.5 / pooled)
    assert compare([1.0], b) is None and compare(a, [2.0]) is None
    constant = compare([3.0, 3.0], [3.0, 3.0])
    assert constant.difference == 0 and constant.p is None and constant.hedges_g is None


def test_holm_adjusts_in_step_down_order_and_keeps_missing_ones_out():
    assert holm([0.01, 0.04, None, 0.03, 0.2]) == [pytest.approx(0.04), pytest.approx(0.09), None,
                                                   pytest.approx(0.09), pytest.approx(0.2)]
    assert holm([0.5, 0.6]) == [pytest.approx(1.0), pytest.approx(1.0)]  # capped at 1, monotone
    assert holm([]) == [] and holm([None]) == [None]
