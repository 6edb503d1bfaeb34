"""What every emulator shares: a loopback HTTP(S) server, its lifecycle, records and faults.

An emulator (:class:`Emulator`) owns a :class:`Server` that runs in a daemon thread, a
thread per connection, and stops at once: hanging handlers are woken, kept-alive
connections cut. Its handler (a :class:`Handler`) only routes; state, request records,
counters and queued faults (:class:`FaultQueue`) live in the emulator. Standard library
only, plus trustme for HTTPS.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import selectors
import shutil
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11; we support 3.10

__all__ = ["TLS", "BodyTooLarge", "Emulator", "Fault", "FaultQueue", "Handler", "Server"]

logger = logging.getLogger(__name__)

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_MAX_DRAIN = 64 * 1024 * 1024
_HANDSHAKE_TIMEOUT = 10.0


# --------------------------------------------------------------------------- TLS


def _import_trustme(owner: str) -> Any:
    try:
        import trustme
    except ImportError:
        raise ImportError(
            f"{owner}(https=True) makes its certificate with trustme, which is not "
            'installed: pip install "nanobanana-django[testing]"'
        ) from None
    return trustme


class TLS:
    """A throwaway CA and a loopback certificate it signed; the CA's PEM lives in a temp dir."""

    def __init__(self, host: str, owner: str) -> None:
        trustme = _import_trustme(owner)
        self.ca = trustme.CA(organization_name=f"nanobanana-django {owner}")
        names = list(_LOOPBACK_NAMES)
        if host not in names and host not in ("0.0.0.0", "::", ""):
            names.append(host)
        self.certificate = self.ca.issue_cert(*names)
        directory = tempfile.mkdtemp(prefix="nanobanana-emulator-tls-")
        weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        self.ca_cert_path = os.path.join(directory, "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_cert_path)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.certificate.configure_cert(context)
        return context


# --------------------------------------------------------------------------- server


class Server(ThreadingHTTPServer):
    """Threading server that knows its emulator and can cut open keep-alive connections."""

    daemon_threads = True
    block_on_close = False  # stop() must not wait for a hanging handler
    allow_reuse_address = True
    request_queue_size = 512  # hundreds of parallel clients connect at once (5 resets some)

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        emulator: Emulator,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.emulator = emulator
        self.tls = tls
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() does a reverse DNS lookup (getfqdn) that can stall.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept; under TLS the handshake is left to the handler's thread, not the acceptor."""
        connection, address = super().get_request()
        if self.tls is not None:
            connection = self.tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def serve_until_closed(self) -> None:
        """Accept connections until close(); unlike serve_forever() it stops without polling."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self and not self._closing.is_set():
                        self._handle_request_noblock()  # type: ignore[attr-defined]
        self._closed.set()

    def close(self) -> None:
        """Stop accepting, cut kept-alive connections (nothing answers after stop()), close."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")
        self._closed.wait(timeout=5)
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()
        self._wake_reader.close()
        self._wake_writer.close()


class BodyTooLarge(Exception):
    """The request body is over the emulator's limit (drained when small enough)."""


class Handler(BaseHTTPRequestHandler):
    """Protocol layer: an emulator's handler implements ``_route`` and ``_crashed``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    sys_version = ""
    server: Server

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.settimeout(_HANDSHAKE_TIMEOUT)
                self.connection.do_handshake()
                self.connection.settimeout(None)
            except OSError as exc:  # a client that does not trust us, or speaks plain HTTP
                logger.debug("%s: TLS handshake failed: %s", self.emulator.log_name, exc)
                return
        super().handle()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s: " + format, self.emulator.log_name, *args)

    @property
    def emulator(self) -> Any:
        return self.server.emulator

    def _route(self) -> None:
        raise NotImplementedError

    def _crashed(self) -> None:
        """Answer a request whose handling raised (a 500 in the API's own shape)."""
        raise NotImplementedError

    def _handle(self) -> None:
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up (timeout tests): fine
        except Exception:
            logger.exception(
                "%s: error handling %s %s", self.emulator.log_name, self.command, self.path
            )
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._crashed()

    def _read_body(self, limit: int) -> bytes:
        """Read the request body; raise BodyTooLarge (after draining it) beyond ``limit``.

        ValueError means broken chunked framing.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunk = self.rfile.read(size)
                self.rfile.readline()
                total += size
                if total <= limit:
                    chunks.append(chunk)
                elif total > _MAX_DRAIN:
                    self.close_connection = True
                    raise BodyTooLarge
            if total > limit:
                raise BodyTooLarge
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            if length > _MAX_DRAIN:
                self.close_connection = True
            else:  # drain, so that the client reads our error instead of a reset
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise BodyTooLarge
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:  # say so: a client must not send its next request here
            self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        """Close the connection without a byte of answer (the ``drop`` fault)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """A queued misbehaviour: ``kind`` at ``site`` for the next ``remaining`` uses."""

    kind: str
    remaining: int
    options: dict[str, Any]
    site: str = ""


class FaultQueue:
    """The faults asked for with ``add_fault``, used oldest first."""

    def __init__(self, kinds: Mapping[str, frozenset[str]]) -> None:
        self.kinds = kinds
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def check(self, kind: str, times: int, options: Mapping[str, Any]) -> None:
        """Refuse an unknown kind, an option it does not take, or ``times`` below 1."""
        if kind not in self.kinds:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(self.kinds)}")
        unknown = set(options) - self.kinds[kind]
        if unknown:
            raise TypeError(f"fault {kind!r} takes no option(s) {', '.join(sorted(unknown))}")
        if times < 1:
            raise ValueError("times must be at least 1")

    def add(self, kind: str, times: int, options: Mapping[str, Any], site: str = "") -> None:
        with self._lock:
            self._faults.append(Fault(kind, times, dict(options), site))

    def take(self, kinds: Collection[str], site: str = "") -> Fault | None:
        """Consume one use of the oldest queued fault of ``kinds`` at ``site``."""
        with self._lock:
            for fault in self._faults:
                if fault.site == site and fault.kind in kinds:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


# --------------------------------------------------------------------------- emulator


class Emulator:
    """The lifecycle of an emulator: bind, serve from a daemon thread, stop at once.

    Subclasses name their ``_handler`` class and ``log_name`` and may extend ``_on_start``
    / ``_on_stop``; ``counts`` and ``requests`` are theirs to fill.
    """

    log_name: ClassVar[str] = "emulator"
    """Names the threads and prefixes the log lines, e.g. ``"replicate emulator"``."""

    def __init__(self, host: str, port: int, tls: TLS | None = None) -> None:
        self.host = host
        self.port = port
        self.counts: Counter[str] = Counter()
        self.requests: list[Any] = []
        self._tls = tls
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._serve_thread: threading.Thread | None = None

    def _handler(self) -> type[Handler]:
        raise NotImplementedError

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self for chaining."""
        if self._server is not None:
            return self
        self._stopping.clear()
        tls = self._tls.server_context() if self._tls is not None else None
        self._server = Server((self.host, self.port), self._handler(), self, tls)
        self.port = self._server.server_address[1]
        self._on_start()
        self._serve_thread = threading.Thread(
            target=self._server.serve_until_closed,
            name=f"{self.log_name.replace(' ', '-')}-http",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging and slow requests wake up and their connections are cut."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()  # first, so that requests woken below can no longer answer
        self._stopping.set()
        self._on_stop()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=5)
            self._serve_thread = None

    def _on_start(self) -> None:
        """Start helpers once the port is bound, before the first request is accepted."""

    def _on_stop(self) -> None:
        """Wake waiters and stop helpers once the server no longer answers."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The root of the emulated API, e.g. ``http://127.0.0.1:54321``."""
        return f"{'https' if self._tls is not None else 'http'}://{self.host}:{self.port}"

    def _sleep(self, seconds: float) -> None:
        """Sleep for a ``hang`` fault or a latency, but wake up at once when stopping."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _record(self, request: Any) -> None:
        with self._lock:
            self.requests.append(request)

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1


# --------------------------------------------------------------------------- CLI


def command_line(prog: str, description: str, port: int) -> argparse.ArgumentParser:
    """A parser with the options every emulator takes: ``--host`` and ``--port``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help="port (0 picks a free one)")
    return parser


def serve_in_foreground(emulator: Emulator, banner: Callable[[], Iterable[str]]) -> int:
    """Start ``emulator``, print ``banner()`` (its URL, keys), serve until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    emulator.start()
    for line in banner():
        print(line)
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
