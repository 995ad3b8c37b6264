"""The bench's confidence interval of a median ratio (bench/bench.py: median_interval) covers the
true median at least 95 % of the time, and is the narrowest such interval from order statistics.

The interval [x(k), x(n+1-k)] misses the median when fewer than k of the n values fall below it or
fewer than k above it; each value falls below with probability 1/2, so the coverage is exactly
P(k <= B <= n - k) for B ~ Binomial(n, 1/2), whatever the distribution of the times."""
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import bench  # noqa: E402


def coverage(n, k):
    return sum(math.comb(n, j) for j in range(k, n - k + 1)) / 2 ** n


def rank_of(xs, value):
    return sorted(xs).index(value) + 1


@pytest.mark.parametrize("n", range(6, 61))
def test_the_interval_covers_95_percent_and_no_narrower_one_does(n):
    xs = [float(i) for i in range(100, 100 + n)]    # distinct: a value's rank is known
    mid, lo, hi = bench.median_interval(xs)
    k = rank_of(xs, lo)
    assert n + 1 - k == rank_of(xs, hi), "the interval is symmetric in ranks"
    assert coverage(n, k) >= 0.95
    assert coverage(n, k + 1) < 0.95, f"n={n}: ranks {k + 1}..{n - k} would do"
    assert lo <= mid <= hi


def test_the_known_ranks_for_twenty_values():
    # Tables of the sign test: for n = 20 the 95 % interval of the median is x(6)..x(15).
    assert bench.median_interval(list(range(1, 21)))[1:] == (6, 15)


def test_too_few_values_give_the_extremes():
    assert bench.median_interval([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
