"""aiorusty.tcp - the user-space TCP/IP stack (C core) and its thin Python wrapper."""
