"""The `aiorusty` command (also `python -m aiorusty`)."""

import argparse
import logging
import sys


def _demo(args):
    from ._demo import run_demo

    ok = run_demo(count=args.count, size=args.size, timeout_s=args.timeout)
    return 0 if ok else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="aiorusty",
        description="aiorusty: an asyncio event loop on an in-process user-space TCP/IP stack.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (default: off)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="two user-space stacks talking over the shm link (no root, no NIC)",
        description="Start a second process with its own stack on an shm link, ping it and stream "
        "UDP datagrams through it, then print round trips and counters. Needs no root.",
    )
    demo.add_argument("--count", type=int, default=2000, help="UDP datagrams to echo (default: 2000)")
    demo.add_argument("--size", type=int, default=64, help="UDP payload bytes (default: 64)")
    demo.add_argument("--timeout", type=float, default=20.0, help="seconds before giving up (default: 20)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
