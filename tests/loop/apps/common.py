"""What every test app serves, so one client check fits all of them."""

import hashlib

HELLO = b"hello from aiorusty\n"
BIG = bytes(range(256)) * (5 * 2**20 // 256)          # 5 MiB, deterministic
BIG_SHA256 = hashlib.sha256(BIG).hexdigest()
