import os
import sys

# Tests run against the checkout (built in place by `python -m aiorusty._build`)
# or against the installed package; the checkout wins when both exist.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
