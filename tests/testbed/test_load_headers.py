"""`aiorusty load -H 'Name: value'` (as wrk's -H): the headers reach a real server byte for
byte, a Host header replaces the URL's, and a malformed one is refused with a clear error."""

import socket
import threading

from ._util import cli

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _recording_server():
    """A kernel socket server on 127.0.0.1 that records each request head and answers it."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(30)
    heads = []

    def serve():
        try:
            while True:
                conn, _ = lsock.accept()
                threading.Thread(target=answer, args=(conn,), daemon=True).start()
        except OSError:
            pass                        # the listener was closed: the test is over

    def answer(conn):
        buf = b""
        with conn:
            conn.settimeout(30)
            while True:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    heads.append(head + b"\r\n\r\n")
                    conn.sendall(RESPONSE)

    threading.Thread(target=serve, daemon=True).start()
    return lsock, heads


def test_headers_reach_the_server_as_given():
    lsock, heads = _recording_server()
    try:
        port = lsock.getsockname()[1]
        res = cli("load", f"http://127.0.0.1:{port}/p?q=1", "--kernel", "-n", "3", "-c", "1", "-d", "10",
                  "--workers", "1", "-q", "-H", "X-Trace: 42", "-H", "host: example.test", "-H", "Accept:*/*")
        assert res.returncode == 0, res.stderr
    finally:
        lsock.close()
    assert heads == [b"GET /p?q=1 HTTP/1.1\r\nHost: example.test\r\nX-Trace: 42\r\nAccept: */*\r\n\r\n"] * 3


def test_without_headers_the_request_is_wrks():
    lsock, heads = _recording_server()
    try:
        port = lsock.getsockname()[1]
        res = cli("load", f"http://127.0.0.1:{port}/", "--kernel", "-n", "1", "-c", "1", "-d", "10",
                  "--workers", "1", "-q")
        assert res.returncode == 0, res.stderr
    finally:
        lsock.close()
    assert heads == [f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()]


def test_a_malformed_header_is_refused_with_the_reason():
    for bad, reason in (("X Bad: 1", "RFC 9110 5.1"), ("NoColon", "RFC 9110 5.1"),
                        ("X-Inject: a\rSet: b", "CR, LF or NUL"), ("X-Name: \u65e5\u672c", "ISO-8859-1")):
        res = cli("load", "http://127.0.0.1:9/", "--kernel", "-n", "1", "-d", "1", "-H", bad, timeout=30)
        assert res.returncode != 0 and reason in res.stderr and repr(bad) in res.stderr, (bad, res.stderr)
