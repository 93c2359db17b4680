import os
import sys

# tests/ holds the shared helpers (_pkt, _netns, _stack_peer); tests/tcp holds _script.
HERE = os.path.dirname(os.path.abspath(__file__))
for d in (os.path.dirname(HERE), HERE):
    if d not in sys.path:
        sys.path.insert(0, d)
