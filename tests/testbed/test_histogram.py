"""The log-linear histogram against known data."""

import random

import pytest

from aiorusty.testbed.hist import Histogram, bucket_index, bucket_range


def exact_percentile(values, p):
    s = sorted(values)
    import math
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def test_small_values_are_exact():
    h = Histogram()
    for v in range(1, 101):
        h.record(v)
    assert h.percentile(50) == 50
    assert h.percentile(90) == 90
    assert h.percentile(99) == 99
    assert h.percentile(100) == 100 == h.max
    assert h.min == 1 and h.count == 100 and h.mean() == 50.5


def test_buckets_cover_every_value_once():
    last_hi = -1
    for idx in range(0, 128 * 30):
        lo, hi = bucket_range(idx)
        assert lo == last_hi + 1 and hi >= lo
        assert bucket_index(lo) == idx and bucket_index(hi) == idx
        last_hi = hi


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_within_relative_error(seed):
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(11, 1.5)) for _ in range(20000)]      # ~60 us median, long tail (ns)
    h = Histogram()
    for v in values:
        h.record(v)
    for p in (50, 90, 99, 99.9):
        exact = exact_percentile(values, p)
        got = h.percentile(p)
        assert exact <= got <= exact * (1 + 1 / 128) + 1, (p, exact, got)
    assert h.percentile(100) == max(values) == h.max


def test_merge_equals_one_histogram_and_json_round_trip():
    rng = random.Random(7)
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(5000):
        v = rng.randrange(1, 10**9)
        (a if i % 2 else b).record(v)
        both.record(v)
    merged = Histogram.from_json(a.to_json()).merge(Histogram.from_json(b.to_json()))
    assert merged.counts == both.counts and merged.count == both.count and merged.max == both.max
    assert merged.min == both.min and merged.total == both.total
    for p in (50, 99, 99.9):
        assert merged.percentile(p) == both.percentile(p)


def test_empty():
    h = Histogram()
    assert h.percentile(99) == 0 and h.summary()["max"] == 0
