"""cffi builder for aiorusty's C core (out-of-line API mode).

The cdef is the public header, aiorusty/include/rusty.h, with preprocessor
lines removed except `#define NAME <integer>` constants. The sources are every
.c file under aiorusty/*/_core/. Setting AIORUSTY_SANITIZE=1 at build time
builds with AddressSanitizer and UndefinedBehaviorSanitizer (run the tests with
libasan preloaded, as .ci/run does); AIORUSTY_DEBUG=1 keeps asserts and -g.

Run `python aiorusty/_build.py` to build the extension in place for
development (not `-m`: importing the package needs the extension it builds);
`pip install .` builds it through setup.py.
"""

import glob
import os
import re
import shutil
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "include", "rusty.h")
CORE_DIRS = [os.path.join(HERE, "nic", "_core"), os.path.join(HERE, "tcp", "_core")]

_CONSTANT = re.compile(r"^#define\s+\w+\s+(0x[0-9a-fA-F]+|\d+)u?\b")


def _cdef_source():
    lines = []
    with open(HEADER) as f:
        for line in f:
            if line.startswith("#") and not _CONSTANT.match(line):
                continue
            lines.append(re.sub(r"(\d)u\b", r"\1", line) if line.startswith("#define") else line)
    return "".join(lines)


def _sources(absolute):
    found = []
    for d in CORE_DIRS:
        found.extend(sorted(glob.glob(os.path.join(d, "*.c"))))
    if absolute:
        return found
    # setuptools wants paths relative to setup.py
    root = os.path.dirname(HERE)
    return [os.path.relpath(p, root) for p in found]


def _flags():
    compile_args = ["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden", "-DNDEBUG"]
    link_args = []
    if os.environ.get("AIORUSTY_DEBUG"):
        compile_args = [a for a in compile_args if a != "-DNDEBUG"] + ["-g", "-DRUSTY_DEBUG=1"]
    if os.environ.get("AIORUSTY_SANITIZE"):
        sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
        compile_args = [a for a in compile_args if a not in ("-O2", "-DNDEBUG")] + ["-O1", "-g"] + sanitize
        link_args += sanitize
    return compile_args, link_args


def make_builder(absolute=False):
    builder = FFI()
    builder.cdef(_cdef_source())
    compile_args, link_args = _flags()
    builder.set_source(
        "aiorusty._rusty",
        '#include "rusty.h"\n',
        sources=_sources(absolute),
        include_dirs=[os.path.join(HERE, "include")] + CORE_DIRS,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    return builder


ffibuilder = make_builder()


def build_in_place():
    """Build the extension next to this file (development checkouts)."""
    root = os.path.dirname(HERE)
    tmp = os.path.join(root, "build", "cffi")
    os.makedirs(tmp, exist_ok=True)
    built = make_builder(absolute=True).compile(tmpdir=tmp, verbose=bool(os.environ.get("V")))
    target = os.path.join(HERE, os.path.basename(built))
    shutil.copy2(built, target)
    return target


if __name__ == "__main__":
    print(build_in_place(), file=sys.stderr)
