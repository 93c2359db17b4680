"""Results of `aiorusty load`: merging workers, the text report, the JSON file.

Owns: merging the per-worker result dicts (counters summed, histograms
merged, duration the longest), the derived figures (req/s, goodput and wire
Gbps, latency percentiles) and their presentation. Not: measuring (load.py).
"""

import json
import platform
import sys
import time

from .hist import Histogram


def merge_load(parts, opts=None):
    hist = Histogram()
    total = {"requests": 0, "bytes": 0, "connections": 0, "unanswered": 0, "connections_open_peak": 0,
             "connect_failed": 0, "statuses": {}, "errors": {}}
    sources = set()
    holds = []
    wire = None
    per_url = {}
    for p in parts:
        hist.merge(Histogram.from_json(p["histogram"]))
        for k in ("requests", "bytes", "connections", "unanswered", "connections_open_peak", "connect_failed"):
            total[k] += p[k]
        sources.update(p["source_addresses"])
        if "hold" in p:
            holds.append(p["hold"])
        for group in ("statuses", "errors"):
            for k, v in p[group].items():
                total[group][k] = total[group].get(k, 0) + v
        for k, v in p.get("per_url", {}).items():
            per_url[k] = per_url.get(k, 0) + v
        if "wire_rx_bytes" in p:
            wire = wire or [0, 0]
            wire[0] += p["wire_rx_bytes"]
            wire[1] += p["wire_tx_bytes"]
    dur = max((p["duration_s"] for p in parts), default=0.0) or 1e-9
    total["duration_s"] = dur
    total["requests_per_s"] = total["requests"] / dur
    total["goodput_gbps"] = total["bytes"] * 8 / dur / 1e9
    if wire is not None:
        total["wire_rx_bytes"], total["wire_tx_bytes"] = wire
        total["wire_gbps"] = (wire[0] + wire[1]) * 8 / dur / 1e9
    else:
        total["wire_gbps"] = None           # kernel sockets: no wire counters of ours
    total["latency_us"] = hist.summary(1e-3)
    total["errors_total"] = sum(total["errors"].values())
    total["source_addresses"] = len(sources)
    if holds:
        total["hold"] = {k: sum(h[k] for h in holds) for k in ("connections", "established", "held", "answered")}
        total["hold"].update(open_s=max(h["open_s"] for h in holds), hold_s=holds[0]["hold_s"])
    if per_url:
        total["per_url"] = per_url
    total["workers"] = [{k: v for k, v in p.items() if k != "histogram"} for p in parts]
    total["histogram_ns"] = hist.to_json()
    if opts is not None:
        total["config"] = {k: v for k, v in vars(opts).items() if k not in ("func",)}
    total["machine"] = machine_info()
    total["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return total


def machine_info():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os
    return {"hostname": platform.node(), "kernel": platform.release(), "cpu": cpu,
            "cores": os.cpu_count(), "python": sys.version.split()[0]}


def _ms(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} us"


def text_report(r, out=sys.stdout):
    lat = r["latency_us"]
    print(f"{r['requests']:,} requests in {r['duration_s']:.2f} s, {r['connections']:,} connections, "
          f"{r['bytes'] / 1e6:,.1f} MB read", file=out)
    print(f"  Requests/sec: {r['requests_per_s']:,.0f}", file=out)
    wire = f"{r['wire_gbps']:.3f} Gbps" if r["wire_gbps"] is not None else "n/a (kernel)"
    print(f"  Goodput: {r['goodput_gbps']:.3f} Gbps   wire: {wire}", file=out)
    print("  Latency  " + "  ".join(f"{k} {_ms(lat[k])}" for k in ("p50", "p90", "p99", "p99.9", "max")), file=out)
    print("  Statuses " + (", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items()) or "none"), file=out)
    errs = ", ".join(f"{k}: {v:,}" for k, v in r["errors"].items()) or "none"
    print(f"  Errors   {errs}" + (f"   (unanswered at the end: {r['unanswered']})" if r["unanswered"] else ""),
          file=out)
    print(f"  Conns    {r['connections']:,} opened from {r['source_addresses']} source address"
          f"{'es' if r['source_addresses'] != 1 else ''}, at most {r['connections_open_peak']:,} open at once"
          f" (summed over workers), {r['connect_failed']:,} failed to open", file=out)
    if "hold" in r:
        h = r["hold"]
        print(f"  Hold     {h['established']:,} of {h['connections']:,} established in {h['open_s']:.1f} s, "
              f"{h['held']:,} still open after {h['hold_s']:g} s idle, {h['answered']:,} answered a request",
              file=out)
    if len(r["workers"]) > 1:
        print("  Workers  " + ", ".join(f"#{w['worker']} core {w['core']}: {w['requests']:,} req "
                                        f"on {w['connections']} conns" for w in r["workers"]), file=out)


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)
