"""Why a CPython asyncio test that passes on stock asyncio fails on aiorusty, when the reason is known.

Classes:
  kernel_peer  the test mixes a kernel endpoint with the loop's 127.0.0.1, which the
               stack owns in this run: a thread serving on its own socket.socket(), a
               socket it binds/connects itself, or sock=. Fixed by the stack sockets
               (a socket object on the stack and the switch that makes socket.socket()
               use it); run_cpython.py --switch runs them that way.
  internals    the test inspects asyncio's own machinery (mocked selector methods,
               file descriptors, _selector specifics) that a stack transport does not have.
  design       a documented choice of aiorusty (DESIGN.md section 4, routing).
  lead         a bug whose fix belongs to code another change owns; the reason says where.

Owns: the table and classify(). Not: running or comparing (run_cpython.py).
"""

import fnmatch

_T = "test.test_asyncio."
_RUN_TEST_SERVER = "test_utils.run_test_server(): the peer is an HTTP server thread on a kernel socket at 127.0.0.1"
_TCP_SERVER = "self.tcp_server(): the peer is a thread serving on a kernel socket at 127.0.0.1"
_TCP_CLIENT = "self.tcp_client(): the client is a thread connecting a kernel socket to the stack's server"
_SOCK_SERVER = "asyncio.start_server(sock=<kernel listener>) then open_connection('127.0.0.1'), routed to the stack"
_MOCK_SOCKET = "patches asyncio.base_events.socket (mock sockets): aiorusty's stack path makes no socket module calls"
_MOCK_SOCK_CONNECT = "mocks loop.sock_connect, which the stack's connect does not call"

# pattern (fnmatch over the test id) -> (class, reason)
KNOWN = {
    # -- kernel_peer -------------------------------------------------------------------
    **{_T + "test_streams.StreamTests." + name: ("kernel_peer", _RUN_TEST_SERVER) for name in (
        "test_async_writer_api", "test_async_writer_api_exception_after_close",
        "test_eof_feed_when_closing_writer", "test_loop_is_closed_resource_warnings", "test_open_connection",
        "test_open_connection_error", "test_open_connection_no_loop_ssl", "test_unclosed_resource_warnings",
        "test_wait_closed_on_close", "test_wait_closed_on_close_with_unread_data")},
    _T + "test_streams.StreamTests.test_drain_raises": (
        "kernel_peer", "the peer is a thread on socket.create_server(('127.0.0.1', 0))"),
    _T + "test_streams.StreamTests.test_start_server": ("kernel_peer", _SOCK_SERVER),
    _T + "test_streams.StreamTests.test_start_tls": ("kernel_peer", _SOCK_SERVER),
    _T + "test_server.*.test_start_server_1": (
        "kernel_peer", _TCP_CLIENT + "; refused, so serve_forever is never cancelled and the test hangs"),
    **{_T + "test_events.*EventLoopTests." + name: ("kernel_peer", _RUN_TEST_SERVER) for name in (
        "test_create_connection", "test_create_connection_local_addr", "test_create_ssl_connection",
        "test_create_connection_local_addr_in_use")},
    **{_T + mod + name: ("kernel_peer", _TCP_SERVER) for mod in ("test_ssl.TestSSL.", "test_sslproto.*.")
       for name in (
        "test_create_connection_memory_leak", "test_create_connection_ssl_1",
        "test_create_connection_ssl_failed_certificate", "test_create_connection_ssl_slow_handshake",
        "test_flush_before_shutdown", "test_remote_shutdown_receives_trailing_data", "test_shutdown_cleanly",
        "test_shutdown_timeout_handler_leak", "test_shutdown_timeout_handler_not_set",
        "test_ssl_handshake_connection_lost", "test_ssl_handshake_timeout", "test_handshake_timeout",
        "test_start_tls_client_buf_proto_1", "test_start_tls_client_corrupted_ssl",
        "test_start_tls_client_reg_proto_1", "test_start_tls_slow_client_cancel")},
    **{_T + mod + name: ("kernel_peer", _TCP_CLIENT) for mod in ("test_ssl.TestSSL.", "test_sslproto.*.")
       for name in ("test_create_server_ssl_1", "test_create_server_ssl_over_ssl", "test_start_tls_server_1")},
    _T + "test_ssl.TestSSL.test_handshake_timeout_handler_leak": (
        "kernel_peer", "the peer is a kernel listener at 127.0.0.1 that never answers: refused on the stack, "
        "so the test sees ConnectionRefusedError, not the handshake timeout it is about (the SSLContext is "
        "freed on both paths: tests/loop/test_tls.py)"),
    **{_T + "test_sock_lowlevel.*EventLoopTests." + name: ("kernel_peer", _RUN_TEST_SERVER + (
        " (bound in its own thread, where no aiorusty loop runs, so the switch leaves it on the kernel; "
        "the loop's client socket goes to the stack, which owns 127.0.0.1)")) for name in (
        "test_sock_client_ops", "test_sock_client_racing", "test_huge_content", "test_huge_content_recvinto",
        "test_create_connection_sock")},
    # -- design ------------------------------------------------------------------------
    **{_T + "test_events.*EventLoopTests." + name: (
        "design", "create_server('0.0.0.0') listens on the kernel and on the stack: server.sockets has two "
        "entries, not one") for name in ("test_create_server", "test_create_server_reuse_port")},
    # -- internals ---------------------------------------------------------------------
    **{_T + "test_base_events.BaseEventLoopWithSelectorTests." + name: ("internals", _MOCK_SOCKET) for name in (
        "test_create_connection_service_name", "test_create_datagram_endpoint_cant_bind",
        "test_create_datagram_endpoint_nosoreuseport", "test_create_datagram_endpoint_socket_err",
        "test_create_server_soreuseport_only_defined")},
    **{_T + "test_base_events.BaseEventLoopWithSelectorTests." + name: ("internals", _MOCK_SOCK_CONNECT)
       for name in ("test_create_connection_timeout", "test_create_datagram_endpoint_connect_err")},
}


def classify(test_id):
    """(class, reason) for a differing test, ("unexplained", "") when nothing matches."""
    for pattern, (cls, why) in KNOWN.items():
        if fnmatch.fnmatchcase(test_id, pattern):
            return cls, why
    return "unexplained", ""
