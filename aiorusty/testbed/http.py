"""The test-bed's static HTTP/1.1 server: an asyncio Protocol for any asyncio loop.

Owns: the page set (a folder loaded into memory, or generated pages of given
sizes such as /64, /1k, /16k, /1m), request parsing (httptools when installed,
else a small parser that looks at each request as a whole: Python work per
request, never per byte), responses prebuilt per page and per second (the Date
header changes once a second), keep-alive, pipelining, HEAD, 400/404/405/413,
and the counters. Not: choosing the loop or the interface (serve.py).

Response bytes (tests compare them exactly):

    HTTP/1.1 200 OK\\r\\nServer: aiorusty\\r\\nDate: <RFC 9110 IMF-fixdate>\\r\\n
    Content-Type: <type>\\r\\nContent-Length: <n>\\r\\n[Connection: close|keep-alive\\r\\n]\\r\\n<body>

`Connection: close` is sent when the server closes after the response (the
request asked for it, HTTP/1.0 without keep-alive, or an error that loses
framing: 400, 413); `Connection: keep-alive` answers an HTTP/1.0 request that
asked for keep-alive. A body of at least BIG bytes is written separately from
its header, as an aiorusty.StaticPayload when the loop offers one (sent with
precomputed checksums), else as the same bytes object every time.
"""

import asyncio
import email.utils
import mimetypes
import os
import socket
import time

try:
    import httptools
except ImportError:                     # pragma: no cover - optional
    httptools = None

__all__ = ["Pages", "HttpServerState", "HttpProtocol", "parse_size", "PATTERN"]

MAX_HEADER = 8192                       # bytes of request line + headers
MAX_BODY = 1 << 20                      # request bodies we read and discard (then 413)
BIG = 64 * 1024                         # bodies this large are written apart from their header
CHUNK = int(os.environ.get("AIORUSTY_TESTBED_CHUNK", 64 * 1024))   # pieces of a big body written as bytes
PATTERN = b"aiorusty-testbed\n" * 4     # 68 bytes; generated bodies repeat it
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Content Too Large"}
_ERROR_BODY = {400: b"bad request\n", 404: b"not found\n", 405: b"method not allowed\n",
               413: b"request too large\n"}


def parse_size(text):
    """'64' -> 64, '1k' -> 1024, '1m' -> 1048576 (binary units)."""
    t = text.strip().lower().rstrip("b")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(t[-1:], 1)
    num = t[:-1] if mult > 1 else t
    if not num.isdigit():
        raise ValueError(f"page size {text!r}: expected a number with an optional k/m suffix, e.g. 64, 1k, 1m")
    return int(num) * mult


def generated_body(size):
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


class Pages:
    """Path -> (content type, body): a folder loaded into memory or generated pages."""

    def __init__(self, pages):
        self.pages = dict(pages)

    @classmethod
    def generated(cls, sizes=("64", "1k", "16k", "1m")):
        pages = {}
        for s in sizes:
            pages["/" + s.strip().lower()] = ("application/octet-stream", generated_body(parse_size(s)))
        index = "".join(f"{p}\n" for p in pages).encode()
        pages.setdefault("/", ("text/plain", index))
        return cls(pages)

    @classmethod
    def folder(cls, root):
        root = os.path.abspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"--root {root}: not a folder")
        pages = {}
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                full = os.path.join(dirpath, name)
                rel = "/" + os.path.relpath(full, root).replace(os.sep, "/")
                ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
                with open(full, "rb") as f:
                    pages[rel] = (ctype, f.read())
                if name == "index.html":
                    pages[rel[: -len("index.html")] or "/"] = pages[rel]
        return cls(pages)


def _nodelay(transport):
    """TCP_NODELAY as asyncio sets it on kernel sockets: a response's last segment must not wait
    for the ACK of the one before (Nagle against the peer's delayed ACK)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass


def http_date(t=None):
    return email.utils.formatdate(t, usegmt=True).encode()


class _Chunks(tuple):
    """A big body as a tuple of bytes pieces; len() is the body's length."""

    def __new__(cls, pieces):
        self = super().__new__(cls, pieces)
        self.nbytes = sum(map(len, self))
        return self


class HttpServerState:
    """What all connections of one server share: pages, prebuilt responses, counters."""

    def __init__(self, pages, loop=None, parser="auto", static_payload=None):
        self.pages = pages
        self.parser = "httptools" if parser == "auto" and httptools is not None else (
            "simple" if parser == "auto" else parser)
        if self.parser == "httptools" and httptools is None:
            raise RuntimeError("--parser httptools: httptools is not installed (pip install httptools)")
        self._static = static_payload           # aiorusty.StaticPayload or None
        self._bodies = {}                       # path -> body object written for big pages
        self._answers = {}                      # (method, target, keep, http10) -> _respond's answer
        self.date = http_date()
        self._date_sec = int(time.time())
        self._timer = None
        self.loop = None
        self.requests = 0
        self.responses = {}                     # status -> count
        self.connections = 0
        self.bytes_out = 0
        self.first_request_cpu = None           # os.times() at the first request (CPU per request)
        self.first_request_time = None
        if loop is not None:
            self.start_clock(loop)

    # -- Date, refreshed once a second by a timer (not read per request) ----------------

    def start_clock(self, loop):
        self.loop = loop
        self._tick()

    def _tick(self):
        now = time.time()
        sec = int(now)
        if sec != self._date_sec:
            self._date_sec = sec
            self.date = http_date(sec)
            self._answers.clear()
        self._timer = self.loop.call_at(self.loop.time() + (sec + 1 - now) + 0.0005, self._tick)

    def stop_clock(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- responses ------------------------------------------------------------------------

    def body_object(self, path, body):
        """What is written for a big body: a StaticPayload, else the body cut in CHUNK-sized
        bytes objects made once (a transport keeps bytes it is given without copying them,
        and a partial send then re-slices one chunk, not the whole body)."""
        obj = self._bodies.get(path)
        if obj is None:
            if self._static is not None:
                obj = self._static(body)
            else:
                obj = _Chunks(body[i:i + CHUNK] for i in range(0, len(body), CHUNK))
            self._bodies[path] = obj
        return obj

    def response(self, method_head, path, keep, http10):
        """(header_or_whole_response, big_body_or_None, status) for a GET/HEAD of path
        (built once per request line and second: HttpProtocol._respond keeps them)."""
        page = self.pages.pages.get(path)
        if page is None:
            out = self.error(404, keep, http10, head_only=method_head) + (404,)
        else:
            ctype, body = page
            head = self._head(200, ctype, len(body), keep, http10)
            if method_head:
                out = (head, None, 200)
            elif len(body) >= BIG:
                out = (head, self.body_object(path, body), 200)
            else:
                out = (head + body, None, 200)
        return out

    def error(self, status, keep=False, http10=False, head_only=False):
        body = _ERROR_BODY[status]
        extra = b"Allow: GET, HEAD\r\n" if status == 405 else b""
        head = self._head(status, "text/plain", len(body), keep, http10, extra)
        return (head if head_only else head + body, None)

    def _head(self, status, ctype, length, keep, http10, extra=b""):
        conn = b"" if keep and not http10 else b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n"
        return (b"HTTP/1.1 %d %s\r\nServer: aiorusty\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                b"%s%s\r\n" % (status, _REASONS[status], self.date, ctype.encode(), length, extra, conn))

    def count(self, status, nbytes):
        self.requests += 1
        self.responses[status] = self.responses.get(status, 0) + 1
        self.bytes_out += nbytes
        if self.first_request_cpu is None:
            self.first_request_cpu = os.times()
            self.first_request_time = time.monotonic()

    def stats(self):
        return {"requests": self.requests, "responses": {str(k): v for k, v in sorted(self.responses.items())},
                "connections": self.connections, "bytes_out": self.bytes_out}


class HttpProtocol(asyncio.Protocol):
    """One client connection. Parses whole requests, writes prebuilt responses."""

    def __init__(self, state):
        self.state = state
        self.transport = None
        self._buf = b""
        self._closing = False
        self._linger = False
        self._linger_timer = None
        self._hp = None

    def connection_made(self, transport):
        self.transport = transport
        self.state.connections += 1
        _nodelay(transport)
        if self.state.parser == "httptools":
            self._hp = _HttptoolsAdapter(self)
            self.data_received = self._hp.feed      # the transport calls the parser directly

    def connection_lost(self, exc):
        self.transport = None
        self._hp = None
        self.__dict__.pop("data_received", None)
        if self._linger_timer is not None:
            self._linger_timer.cancel()

    def eof_received(self):
        return False                    # close when the client half-closes (after responses queued)

    def data_received(self, data):
        if self._closing:
            return
        if self._hp is not None:
            self._hp.feed(data)
            return
        buf = self._buf + data if self._buf else data
        out = []
        pos = 0
        n = len(buf)
        while pos < n and not self._closing:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                if n - pos > MAX_HEADER:
                    self._fail(out, 413)
                break
            if end - pos > MAX_HEADER:
                self._fail(out, 413)
                break
            head = buf[pos:end]
            eol = head.find(b"\r\n")
            line = head if eol < 0 else head[:eol]
            parts = line.split(b" ")
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1]:
                self._fail(out, 400)
                break
            method, target, version = parts
            http10 = version == b"HTTP/1.0"
            if eol < 0:
                keep = not http10
                length = 0
            else:
                low = head[eol:].lower()
                if http10:
                    keep = b"\nconnection: keep-alive" in low
                else:
                    keep = b"\nconnection: close" not in low
                length = 0
                i = low.find(b"\ncontent-length:")
                if i >= 0:
                    j = low.find(b"\r", i)
                    value = low[i + 16: j if j >= 0 else len(low)].strip()
                    if not value.isdigit():
                        self._fail(out, 400)
                        break
                    length = int(value)
                if b"\ntransfer-encoding:" in low:
                    self._fail(out, 413 if method not in (b"GET", b"HEAD") else 400)
                    break
            if length > MAX_BODY:
                self._fail(out, 413)
                break
            body_end = end + 4 + length
            if body_end > n:
                break                   # wait for the body
            pos = body_end
            self._respond(out, method, target, keep, http10)
        self._buf = buf[pos:] if pos < n and not self._closing else b""
        self._flush(out)

    # -- shared by both parsers ------------------------------------------------------------

    def _respond(self, out, method, target, keep, http10):
        st = self.state
        key = (method, target, keep, http10)
        answer = st._answers.get(key)
        if answer is None:
            answer = st._answers[key] = self._answer(method, target, keep, http10)
            if len(st._answers) > 4096:         # many distinct targets: remember the latest only
                st._answers.clear()
        whole, big, status, nbytes = answer
        out.append(whole)
        if big is not None:
            out.append(big)
        st.count(status, nbytes)
        if not keep:
            self._closing = True

    def _answer(self, method, target, keep, http10):
        """(header or whole response, big body or None, status, bytes) for one request."""
        st = self.state
        if method == b"GET" or method == b"HEAD":
            q = target.find(b"?")
            path = (target if q < 0 else target[:q]).decode("latin-1")
            whole, big, status = st.response(method == b"HEAD", path, keep, http10)
            return whole, big, status, len(whole) + (getattr(big, "nbytes", None) or len(big) if big is not None else 0)
        whole, _ = st.error(405, keep, http10, head_only=method == b"HEAD")
        return whole, None, 405, len(whole)

    def _fail(self, out, status):
        whole, _ = self.state.error(status, False, False)
        out.append(whole)
        self.state.count(status, len(whole))
        self._closing = True
        self._linger = True

    def _flush(self, out):
        t = self.transport
        if t is None:
            return
        if out:
            if len(out) == 1:
                t.write(out[0])
            else:
                small = []
                for piece in out:
                    if isinstance(piece, (bytes, bytearray)):
                        small.append(piece)
                    elif isinstance(piece, _Chunks):
                        if small:
                            t.write(b"".join(small))
                            small = []
                        for c in piece:
                            t.write(c)
                    else:               # a StaticPayload: keep it whole
                        if small:
                            t.write(b"".join(small))
                            small = []
                        t.write(piece)
                if small:
                    t.write(b"".join(small) if len(small) > 1 else small[0])
        if self._closing:
            if self._linger and t.can_write_eof():
                # Lingering close (as nginx does after an error): the request may
                # still be arriving, and closing with unread data sends a reset
                # that can destroy the response before the client reads it. Send
                # FIN, discard what comes, close on the client's FIN or after 2 s.
                t.write_eof()
                loop = self.state.loop or asyncio.get_running_loop()
                self._linger_timer = loop.call_later(2.0, t.close)
            else:
                t.close()


class _HttptoolsAdapter:
    """httptools callbacks collecting one request at a time; responses go out per data_received."""

    def __init__(self, proto):
        self.proto = proto
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""                  # of the request being parsed (no on_message_begin: a
        self.out = None                 # callback less per request; reset when one completes)
        self.head_bytes = 0
        self.bad_header = False

    def feed(self, data):
        """HttpProtocol.data_received with httptools: parse, then write what it answered."""
        proto = self.proto
        if proto._closing:
            return
        self.out = out = []
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            proto._fail(out, 400)
        except httptools.HttpParserError:
            if not proto._closing:
                proto._fail(out, 413 if self.bad_header else 400)
        self.out = None
        t = proto.transport
        if len(out) == 1 and t is not None and not proto._closing:
            t.write(out[0])                 # the common case of _flush
        else:
            proto._flush(out)

    # httptools callbacks

    def on_url(self, url):
        self.url += url
        self.head_bytes += len(url)

    def on_header(self, name, value):
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEADER or (len(value) > 6 and len(name) == 14 and name.lower() == b"content-length"
                                            and value.isdigit() and int(value) > MAX_BODY):
            self.bad_header = True
            raise ValueError("request too large")  # httptools turns it into HttpParserCallbackError

    def on_message_complete(self):
        proto = self.proto
        if proto._closing:
            return
        p = self.parser
        version = p.get_http_version()
        http10 = version == "1.0"
        proto._respond(self.out, p.get_method(), self.url, p.should_keep_alive(), http10)
        self.url = b""
        self.head_bytes = 0
