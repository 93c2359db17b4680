"""What every benchmark records beside its figures: the machine, kernel, CPU, Python, date."""

import datetime
import json
import os
import platform
import sys


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def write_json(path, record, indent=2):
    """Write a results record to path, making its folder; nothing when path is empty."""
    if not path:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=indent)


def describe(**extra):
    """A dict for the top of a results JSON; `extra` adds device, loop, pinning, ..."""
    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": " ".join(platform.uname()),
        "kernel": platform.release(),
        "cpu_model": cpu_model(),
        "cpus_online": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": sys.version.split()[0],
    }
    info.update(extra)
    return info
