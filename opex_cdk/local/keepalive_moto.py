"""moto's own server app, served with HTTP keep-alive: what the benchmark measures the service against.

Why it exists. ``moto_server`` serves moto's WSGI app with werkzeug's development server, which sends
``Connection: close`` on every response (werkzeug/serving.py: "Always close the connection"). Real
DynamoDB keeps connections alive, and the service is designed around that: its boto3 clients are built
once per process and reuse their connection pool. Against ``moto_server`` every call pays a TCP connect
in the caller and a new thread in moto, so the fake hides exactly the property the benchmark is meant to
measure. Second, moto 5.2.5 lists its package directory (``moto.backends.list_of_moto_modules``: an
``os.listdir`` and an ``isdir`` per entry, ~200 entries) on *every* request, in
``DomainDispatcherApplication.get_backend_for_host``: 10-15 % of moto's CPU per GetItem. The list can
only change when the installed moto does, so :func:`cache_moto_module_list` computes it once per process.
Together: moto's CPU per GetItem ~4.2 ms -> ~2.4 ms on the benchmark machine.

What it does not change: what moto answers. The app is the one ``moto.server.main`` builds
(``DomainDispatcherApplication(create_backend_app)``, ``MOTO_PORT`` set the same way), with the same
backends and state. Where waitress alone would hand moto a different request or the client a different
response, this server does what werkzeug's server with moto's ``MotoRequestHandler`` does: ``RAW_URI``
is set (moto routes S3 keys on it: without it an encoded ``/`` in a key is decoded); leading slashes of
the target are reduced to one in ``REQUEST_URI``/``RAW_URI`` too (http.server does it before werkzeug);
an absolute target names the host; ``x-amz-meta-*`` headers with underscores are kept under their
original names (waitress drops underscored headers); ``X-Forwarded-*`` headers pass through (waitress 3
clears them by default); and response header names go out as moto spelled them (waitress capitalizes
them, and boto3 returns S3 metadata keys as spelled). What remains different is transport only: keep-alive,
the ``Server`` header and header order, request bodies de-chunked by waitress (moto reads the same
bytes), repeated request headers joined with ``", "`` instead of ``","``, and the thread model (below).
No TLS and no ``--reload``: nothing here uses them.

Threads: waitress runs requests on a fixed pool (``--threads``, default 16) and keeps idle connections
in its event loop, where werkzeug starts a thread per connection. moto's handlers are pure Python under
the GIL, so more threads add no throughput on this machine; 16 lets every one of the benchmark's 16
concurrent clients have a request in progress, and requests beyond that wait in waitress's queue rather
than in the GIL. A long-blocking moto call (SQS long polling) holds a thread; nothing here makes one.

Run as ``python -m opex_cdk.local.keepalive_moto -H 127.0.0.1 -p PORT`` (the arguments of
``moto_server``); :func:`start_keepalive_moto_server` does that on a free port and returns an
:class:`opex_cdk.local.moto_server.MotoServer`. SIGTERM/SIGINT stop it (exit status 0).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any
from urllib.parse import unquote, urlsplit

from opex_cdk.local.moto_server import MotoServer, start_moto_process

__all__ = ["DEFAULT_THREADS", "cache_moto_module_list", "main", "start_keepalive_moto_server"]

#: Request threads: one per concurrent benchmark client (see the module docstring).
DEFAULT_THREADS = 16


def cache_moto_module_list() -> tuple[str, ...]:
    """Make ``moto.backends.list_of_moto_modules`` list moto's package directory once per process.

    moto calls it on every request to test whether a host names a backend; its answer depends only
    on the installed moto. Idempotent; returns the (cached) list. The uncached function stays
    reachable as ``moto.backends.list_of_moto_modules.__wrapped__``.
    """
    import moto.backends as backends

    current: Callable[[], Iterable[str]] = backends.list_of_moto_modules
    cached: tuple[str, ...] | None = getattr(current, "cached", None)
    if cached is not None:
        return cached
    modules = tuple(current())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules.cached = modules  # type: ignore[attr-defined]
    list_of_moto_modules.__wrapped__ = current  # type: ignore[attr-defined]
    list_of_moto_modules.__doc__ = "moto's module list, computed once (opex_cdk.local.keepalive_moto)."
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]
    return modules


def _wsgi_encoding_dance(text: str) -> str:
    """werkzeug's: a str decoded from latin-1, as the WSGI environ carries it (UTF-8 bytes as latin-1)."""
    return text.encode().decode("latin-1")


def _build_server(app: Any, host: str, port: int, threads: int) -> Any:
    """A waitress server for ``app`` whose environ matches werkzeug's + ``MotoRequestHandler``'s."""
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )
    from waitress.adjustments import Adjustments
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser, get_header_lines
    from waitress.rfc7230 import HEADER_FIELD_RE
    from waitress.server import TcpWSGIServer
    from waitress.task import WSGITask

    class Parser(HTTPRequestParser):  # type: ignore[misc]
        """Keeps the ``x-amz-meta-*`` headers with underscores that waitress drops (as moto's handler does)."""

        preserved_names: dict[str, str] = {}

        def parse_header(self, header_plus: bytes) -> None:
            super().parse_header(header_plus)
            dashed = set(self.headers)  # waitress's keys: upper case, "-" -> "_", no HTTP_ prefix
            names: dict[str, str] = {}
            values: dict[str, list[str]] = {}
            for line in get_header_lines(header_plus[header_plus.find(b"\r\n") + 2 :]):
                match = HEADER_FIELD_RE.match(line)
                if not match:
                    continue
                name = match.group("name").decode("latin-1")
                if not should_preserve_original_header_name(name):
                    continue
                key = environ_key_for_header(name)
                if key.removeprefix("HTTP_") in dashed:  # never let an underscored header stand in for a dashed one
                    continue
                names.setdefault(key, name)
                values.setdefault(key, []).append(match.group("value").strip(b" \t").decode("latin-1"))
            for key, key_values in values.items():
                self.headers[key.removeprefix("HTTP_")] = ",".join(key_values)
            self.preserved_names = names

    class Task(WSGITask):  # type: ignore[misc]
        """The request as werkzeug's dev server hands it to moto; the response headers as moto spelled them."""

        def get_environment(self) -> dict[str, Any]:
            if self.environ is not None:
                return self.environ  # type: ignore[no-any-return]
            environ: dict[str, Any] = super().get_environment()
            target = self.request.request_uri  # the request line's target, decoded as latin-1 (as http.server does)
            if target.startswith("//"):  # http.server reduces leading slashes to one before werkzeug sees it
                target = "/" + target.lstrip("/")
            url = urlsplit(target)
            environ["PATH_INFO"] = _wsgi_encoding_dance(unquote(url.path))
            environ["QUERY_STRING"] = _wsgi_encoding_dance(url.query)
            environ["REQUEST_URI"] = environ["RAW_URI"] = _wsgi_encoding_dance(target)
            if url.scheme and url.netloc:  # an absolute URI names the host (RFC 2616), as werkzeug reads it
                environ["HTTP_HOST"] = url.netloc
            environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = dict(getattr(self.request, "preserved_names", {}))
            return environ

        def build_response_header(self) -> bytes:
            """waitress's framing (length, chunking, Connection, Server, Date), moto's header spelling.

            waitress capitalizes every response header name; clients can see it (boto3 returns S3
            metadata keys as spelled in the response), werkzeug sends them as the app wrote them.
            """
            spelling = {name.lower(): name for name, _ in reversed(self.response_headers)}
            super().build_response_header()
            lines = [f"HTTP/{self.version} {self.status}"]
            lines += [f"{spelling.get(name.lower(), name)}: {value}" for name, value in self.response_headers]
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    class Channel(HTTPChannel):  # type: ignore[misc]
        parser_class = Parser
        task_class = Task

    class Server(TcpWSGIServer):  # type: ignore[misc]
        channel_class = Channel

    adjustments = Adjustments(
        host=host,
        port=port,
        threads=threads,
        ipv6=False,
        server_name=host,  # werkzeug's SERVER_NAME: the address it is bound to
        clear_untrusted_proxy_headers=False,  # pass X-Forwarded-* through to moto, as werkzeug does
        connection_limit=1000,  # waitress stops accepting at its limit (default 100); werkzeug has none
        asyncore_use_poll=True,  # select() stops at fd 1024
    )
    return Server(app, map={}, adj=adjustments)


def _quiet_logging() -> None:
    """Warnings and errors to stderr; no request log (waitress has none); no queue-depth chatter.

    ``waitress.queue`` warns whenever requests wait for a thread, which is the normal state under the
    benchmark's load (see the module docstring), not a fault.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def _exit(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGINT: leave the event loop (waitress then stops its threads), as ``moto_server`` does."""
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    """Serve moto on ``-H``/``-p`` (``moto_server``'s arguments) until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="moto's server app with HTTP keep-alive (waitress)")
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="request threads (default: 16)")
    args = parser.parse_args(argv)
    if "MOTO_PORT" not in os.environ:  # as moto.server.main: moto builds some URLs with it
        os.environ["MOTO_PORT"] = str(args.port)
    _quiet_logging()
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    cache_moto_module_list()
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]  # as moto.server.main sets it
    server = _build_server(app, args.host, args.port, args.threads)
    try:
        server.run()  # returns after SIGTERM/SIGINT, its threads stopped
    finally:
        server.close()


def start_keepalive_moto_server(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    startup_timeout: float = 20.0,
    attempts: int = 3,
    threads: int = DEFAULT_THREADS,
) -> MotoServer:
    """Start ``python -m opex_cdk.local.keepalive_moto`` and return once it answers.

    Arguments as :func:`opex_cdk.local.moto_server.start_moto_server` (``env`` is added to this
    process's environment), plus ``threads``: waitress's request threads. Default: 16.

    Raises:
        MotoServerError: the server did not answer in time or exited.
    """

    def command(bind: str, chosen: int) -> list[str]:
        module = "opex_cdk.local.keepalive_moto"
        return [sys.executable, "-m", module, "-H", bind, "-p", str(chosen), "--threads", str(threads)]

    return start_moto_process(
        command,
        host=host,
        port=port,
        env=env,
        log_path=log_path,
        startup_timeout=startup_timeout,
        attempts=attempts,
    )


if __name__ == "__main__":
    main()
