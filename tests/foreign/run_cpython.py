"""Run CPython's own asyncio tests on stock asyncio and on aiorusty, and compare.

    python tests/foreign/run_cpython.py                      # the default modules, both modes
    python tests/foreign/run_cpython.py test_streams test_server --json /tmp/x.json
    python tests/foreign/run_cpython.py --switch             # a third mode: aiorusty + use_stack_sockets()

In the aiorusty mode every loop the tests make is an aiorusty loop whose
in-process loopback interface owns 127.0.0.0/8 (tests/foreign/_cpython_child.py),
so the servers, clients and datagram endpoints the tests open on 127.0.0.1
run on the user-space stack. Each module runs in a child process per mode; a
child silent for --stall seconds is killed, its running test recorded as
"timeout", and the module resumed after it.

Prints per module: tests run / passed / failed / errors / skipped for each mode,
and for the aiorusty modes how many tests made a stack transport or listener at
all (the rest ran on kernel sockets they passed as sock=, or made no socket);
writes a JSON (--json, default bench/results/foreign_cpython.json) with those
counts, the machine, and every test whose outcome differs from stock, labelled
with its known class from tests/foreign/known_differences.py ("unexplained"
when none: a bug to fix or to classify).

Owns: choosing modules, supervising children, counting, comparing. Not: the loop
replacement or running a module's tests (_cpython_child.py), why a test differs
(known_differences.py).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from bench import _machine  # noqa: E402
import _cpython_child  # noqa: E402
import known_differences  # noqa: E402

# The modules whose tests open TCP/UDP on 127.0.0.1 (test_events' per-loop
# classes included), then the protocol-level ones that build loops but no sockets.
DEFAULT_MODULES = ["test_streams", "test_server", "test_sock_lowlevel", "test_events", "test_base_events",
                   "test_buffered_proto", "test_sendfile", "test_ssl", "test_sslproto", "test_protocols"]
CHILD = os.path.join(HERE, "_cpython_child.py")
OUTCOMES = ("pass", "fail", "error", "skip")


def run_module(mode, module, stall, log):
    """{test id: (outcome, detail, used the stack)} for one module in one mode, resuming after hung tests."""
    results, crashes = {}, []
    with tempfile.TemporaryDirectory(prefix="aiorusty-foreign-") as tmp:
        out_path = os.path.join(tmp, "results.jsonl")
        while True:
            skip = sorted(results)
            cmd = [sys.executable, CHILD, mode, module, out_path] + (["--skip", *skip] if skip else [])
            with open(os.path.join(tmp, "stderr"), "w") as err:
                child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)
                started, seen, last = None, 0, time.monotonic()
                while child.poll() is None:
                    time.sleep(0.2)
                    lines = _read_lines(out_path)
                    if len(lines) != seen:
                        seen, last = len(lines), time.monotonic()
                    if time.monotonic() - last > stall:
                        os.killpg(child.pid, signal.SIGKILL)     # the child's own session: it and its helpers
                        child.wait()
                        break
            for rec in _read_lines(out_path):
                if "start" in rec:
                    started = rec["start"]
                elif "id" in rec:
                    prev = results.get(rec["id"])
                    # a test's later failing subtest outranks its own pass/fail line
                    if prev is None or prev[0] == "pass":
                        results[rec["id"]] = (rec["outcome"], rec["detail"], rec.get("stack", False))
                    started = None if started == rec["id"] else started
                elif "crash" in rec:
                    crashes.append(rec["crash"])
            if os.path.exists(out_path):
                os.unlink(out_path)
            if child.returncode == 0 or started is None:
                # unittest exits 1 when a test failed; 1 with no result at all, or any
                # other code, is the child's own failure (e.g. --switch without the switch)
                if child.returncode not in (0, 1) or (child.returncode == 1 and not results):
                    with open(os.path.join(tmp, "stderr")) as err:
                        crashes.append(f"exit {child.returncode}: " + err.read()[-2000:])
                break
            hung = "timeout" if child.returncode == -signal.SIGKILL else f"child exited {child.returncode}"
            results[started] = ("error", f"{hung} in this test (no result for {stall:.0f} s); resumed after it", None)
            log(f"  {mode} {module}: {started}: {hung}, resuming")
    return results, crashes


def _read_lines(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]
    except FileNotFoundError:
        return []


def counts(results):
    c = {k: 0 for k in OUTCOMES}
    c["on_stack"] = 0                   # tests that made a stack transport or listener
    for outcome, _, stack in results.values():
        c[outcome] += 1
        c["on_stack"] += bool(stack)
    c["run"] = len(results)
    return c


def differences(stock, other):
    """Tests that pass on stock and do not on `other`, and the reverse, each with its known class."""
    worse, better = [], []
    for tid, (outcome, detail, _) in sorted(other.items()):
        base = stock.get(tid, ("absent", ""))[0]
        if base == "pass" and outcome in ("fail", "error"):
            cls, why = known_differences.classify(tid)
            worse.append({"id": tid, "stock": base, "outcome": outcome, "class": cls, "reason": why,
                          "detail": detail[-1500:]})
        elif outcome == "pass" and base in ("fail", "error"):
            better.append({"id": tid, "stock": base, "outcome": outcome})
    return worse, better


def compare(modules, modes=("stock", "aiorusty"), stall=60.0, row=None, log=None):
    """Run each module in each mode; the results record (counts and differences per module,
    "unexplained": their number). row(module, entry) is called as each module finishes."""
    record = _machine.describe(loop_spec=_cpython_child.SPEC, modes=list(modes), modules={})
    unexplained = []
    for module in modules:
        t0 = time.monotonic()
        per_mode = {mode: run_module(mode, module, stall, log or (lambda msg: None)) for mode in modes}
        entry = {"seconds": round(time.monotonic() - t0, 1)}
        for mode in modes:
            res, crashes = per_mode[mode]
            entry[mode] = counts(res)
            if crashes:
                entry[f"{mode}_crashes"] = crashes
            if mode != "stock":
                worse, better = differences(per_mode["stock"][0], res)
                entry[f"{mode}_fails_where_stock_passes"] = worse
                entry[f"{mode}_passes_where_stock_fails"] = better
                unexplained += [f"{mode}: {w['id']}" for w in worse if w["class"] == "unexplained"]
        record["modules"][module] = entry
        if row is not None:
            row(module, entry)
    record["unexplained"] = unexplained
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", default=DEFAULT_MODULES,
                    help="test.test_asyncio module names (default: %(default)s)")
    ap.add_argument("--switch", action="store_true",
                    help="also run a third mode: aiorusty with aiorusty.use_stack_sockets() called first")
    ap.add_argument("--stall", type=float, default=60.0,
                    help="seconds without a finished test before a child is killed (default %(default)s)")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "foreign_cpython.json"),
                    help="where to write the results ('' for nowhere; default %(default)s)")
    args = ap.parse_args(argv)
    modes = ["stock", "aiorusty"] + (["switch"] if args.switch else [])
    if args.switch:
        import aiorusty
        if not hasattr(aiorusty, "use_stack_sockets"):
            ap.error("--switch: this aiorusty has no use_stack_sockets() (the switch that puts "
                     "socket.socket() on the stack); run without --switch")

    print(f"{'':20}" + "".join(f"| {m:^{23 if m == 'stock' else 29}}" for m in modes))
    print(f"{'module':20}" + "".join(f"| {'run pass fail err skip':>23}" + ("" if m == "stock" else " stack")
                                     for m in modes))

    def row(module, entry):
        line = f"{module:20}"
        for mode in modes:
            c = entry[mode]
            line += f"| {c['run']:>5} {c['pass']:>4} {c['fail']:>4} {c['error']:>3} {c['skip']:>4}"
            line += "" if mode == "stock" else f" {c['on_stack']:>5}"
        print(line, flush=True)

    record = compare(args.modules, modes, args.stall, row, lambda msg: print(msg, file=sys.stderr, flush=True))
    _machine.write_json(args.json, record)
    print(f"{len(record['unexplained'])} unexplained test(s) pass on stock asyncio and fail on aiorusty"
          + (f"; details in {args.json}" if args.json else ""))
    for tid in record["unexplained"]:
        print("  " + tid)
    return 1 if record["unexplained"] else 0


if __name__ == "__main__":
    sys.exit(main())
