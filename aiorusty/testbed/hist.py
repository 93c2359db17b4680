"""A log-linear latency histogram in the manner of HdrHistogram.

Owns: recording integer values (nanoseconds in the load generator) into
buckets whose width is 1/128 of their magnitude (relative error under 0.8%),
percentiles, merging histograms of several workers, and a compact JSON form.
Values below 256 are exact.

Index of value v: v itself when v < 256; otherwise with shift = bit_length(v) - 8,
index = shift * 128 + (v >> shift), so each power of two above 256 spans 128
buckets. A bucket is reported as its highest equivalent value (as HdrHistogram
does), capped at the largest value recorded.
"""

import math

SUB_BITS = 7
_SUB = 1 << SUB_BITS            # 128 buckets per power of two
_EXACT = _SUB << 1              # values below 256 have their own bucket


def bucket_index(v):
    if v < _EXACT:
        return v if v > 0 else 0
    shift = v.bit_length() - (SUB_BITS + 1)
    return (shift << SUB_BITS) + (v >> shift)


def bucket_range(idx):
    """(lowest, highest) value of a bucket."""
    if idx < _EXACT:
        return idx, idx
    shift = (idx >> SUB_BITS) - 1
    mant = idx - (shift << SUB_BITS)
    return mant << shift, ((mant + 1) << shift) - 1


class Histogram:
    __slots__ = ("counts", "count", "total", "min", "max")

    def __init__(self):
        self.counts = {}
        self.count = 0
        self.total = 0
        self.min = None
        self.max = 0

    def record(self, v):
        """Count one value (an int: nanoseconds)."""
        if v < _EXACT:
            if v < 0:
                v = 0
            i = v
        else:
            shift = v.bit_length() - (SUB_BITS + 1)
            i = (shift << SUB_BITS) + (v >> shift)
        c = self.counts
        c[i] = c.get(i, 0) + 1
        self.count += 1
        self.total += v
        if v > self.max:
            self.max = v
        if self.min is None or v < self.min:
            self.min = v

    def merge(self, other):
        for i, n in other.counts.items():
            self.counts[i] = self.counts.get(i, 0) + n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        return self

    def percentile(self, p):
        """The value at or below which p percent of the recorded values fall (0 when empty)."""
        if not self.count:
            return 0
        rank = max(1, math.ceil(p / 100.0 * self.count))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return min(bucket_range(i)[1], self.max)
        return self.max

    def mean(self):
        return self.total / self.count if self.count else 0.0

    def summary(self, scale=1e-3):
        """Percentiles (p50/p90/p99/p99.9/max, mean) scaled (ns -> us by default)."""
        out = {f"p{p:g}": self.percentile(p) * scale for p in (50, 90, 99, 99.9)}
        out["max"] = self.max * scale
        out["min"] = (self.min or 0) * scale
        out["mean"] = self.mean() * scale
        return out

    def to_json(self):
        return {"counts": {str(i): n for i, n in sorted(self.counts.items())}, "count": self.count,
                "total": self.total, "min": self.min, "max": self.max}

    @classmethod
    def from_json(cls, d):
        h = cls()
        h.counts = {int(i): n for i, n in d["counts"].items()}
        h.count, h.total, h.min, h.max = d["count"], d["total"], d["min"], d["max"]
        return h
