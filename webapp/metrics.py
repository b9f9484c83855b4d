"""Structured JSON logs and CloudWatch embedded-metric-format (EMF) documents.

Every request produces one JSON line. By default that line is also an EMF document (it carries the
``_aws`` block), so the CloudWatch agent shipping the log turns it into the application metrics the
alarms use, without a second line per request. With an EMF endpoint (the agent's
``logs.metrics_collected.emf`` listener, ``udp://127.0.0.1:25888``) the EMF document goes there
instead and the log line stays plain, so no metric is counted twice.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import IO, Any

NAMESPACE = "OpexCdk/RecommendationService"
SERVICE_DIMENSION = "Service"
SERVICE_NAME = "RecommendationService"

#: (metric name, unit) — the contract the observability stack's alarms are built on.
METRICS: tuple[tuple[str, str], ...] = (
    ("Requests", "Count"),
    ("PageRequests", "Count"),
    ("Latency", "Milliseconds"),
    ("FallbackServed", "Count"),
    ("DependencyErrors", "Count"),
    ("Status2xx", "Count"),
    ("Status4xx", "Count"),
    ("Status5xx", "Count"),
)


def request_metrics(
    *, status: int, latency_ms: float, fallback_served: bool, dependency_error: bool, page: bool = False
) -> dict[str, float]:
    """The metric values of one request, keyed by metric name.

    ``page``: the request was for the recommendation page (``/``). ``PageRequests`` is the denominator
    of the fallback share: dividing by ``Requests`` would dilute it with the load balancer's health
    checks, which never serve a fallback, so a quiet site could serve every user the fallback and
    still show a low rate.
    """
    return {
        "Requests": 1,
        "PageRequests": int(page),
        "Latency": round(latency_ms, 3),
        "FallbackServed": int(fallback_served),
        "DependencyErrors": int(dependency_error),
        "Status2xx": int(200 <= status < 300),
        "Status4xx": int(400 <= status < 500),
        "Status5xx": int(500 <= status < 600),
    }


def emf_document(
    values: dict[str, float], *, timestamp_ms: int, log_group: str | None = None, **properties: Any
) -> dict[str, Any]:
    """An EMF document: the ``_aws`` metadata, the ``Service`` dimension, the values, the properties.

    Properties (path, instance, ...) are not dimensions: they stay searchable in Logs Insights
    without multiplying metric cardinality.
    """
    metadata: dict[str, Any] = {
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [
            {
                "Namespace": NAMESPACE,
                "Dimensions": [[SERVICE_DIMENSION]],
                "Metrics": [{"Name": name, "Unit": unit} for name, unit in METRICS],
            }
        ],
    }
    if log_group:
        metadata["LogGroupName"] = log_group
    return {"_aws": metadata, SERVICE_DIMENSION: SERVICE_NAME, **properties, **values}


class EmfUdpSink:
    """Sends EMF documents as UDP datagrams (fire and forget: a metric never blocks a request).

    Args:
        endpoint: ``udp://host:port``, e.g. the CloudWatch agent's ``udp://127.0.0.1:25888``.
    """

    def __init__(self, endpoint: str) -> None:
        parsed = urllib.parse.urlparse(endpoint)
        if parsed.scheme != "udp" or not parsed.hostname or not parsed.port:
            raise ValueError(f"EMF endpoint must look like udp://host:port, got {endpoint!r}")
        self._address = (parsed.hostname, parsed.port)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, document: dict[str, Any]) -> None:
        """Send one document; a lost datagram is a lost data point, never an error for the caller."""
        try:
            self._socket.sendto(json.dumps(document, separators=(",", ":")).encode() + b"\n", self._address)
        except OSError:
            pass  # the agent is down or the buffer is full: metrics are best effort by design

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()


#: Log fields copied into an EMF document sent to the agent (``worker``: which process served it).
_EMF_PROPERTIES = ("instance", "az", "worker", "path", "status", "source")


class AppendFile(io.TextIOBase):
    """A log file several processes append to (the supervisor and its workers): one line, one write.

    Opened ``O_APPEND``, unbuffered: each :meth:`write` is a single ``os.write`` at the end of the file,
    so lines from different processes never interleave or overwrite each other.
    """

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        written = os.write(self._fd, data)
        while written < len(data):  # a regular file takes it all at once; never a torn line silently
            written += os.write(self._fd, data[written:])
        return len(text)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class JsonLog:
    """Thread-safe writer of one JSON object per line.

    Args:
        stream: where lines go (stdout, or the ``--log-file``).
        static: fields added to every line (``instance``, ``az``).
        emf_sink: when set, request metrics go there instead of into the log line.
        emf_log_group: ``_aws.LogGroupName`` for the EMF documents. Default: let the agent decide.
        clock: wall clock in seconds.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        static: dict[str, Any] | None = None,
        emf_sink: EmfUdpSink | None = None,
        emf_log_group: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._static = dict(static or {})
        self._emf_sink = emf_sink
        self._emf_log_group = emf_log_group
        self._clock = clock
        self._lock = threading.Lock()

    def event(self, event: str, *, level: str = "info", **fields: Any) -> None:
        """Log a named event (``started``, ``breaker_opened``, ``flag_invalid``, ...)."""
        now = self._clock()
        self._write({"time": _iso(now), "level": level, "event": event, **self._static, **fields})

    def request(
        self,
        *,
        method: str | None,
        path: str | None,
        status: int,
        latency_ms: float,
        source: str | None = None,
        dependency_error: bool = False,
        reason: str | None = None,
        client: str | None = None,
    ) -> None:
        """Log one request, with its metrics as EMF (in the line, or sent to the EMF endpoint)."""
        now = self._clock()
        values = request_metrics(
            status=status,
            latency_ms=latency_ms,
            fallback_served=source == "fallback",
            dependency_error=dependency_error,
            page=path == "/",
        )
        line: dict[str, Any] = {
            "time": _iso(now),
            "level": "warning" if status >= 500 else "info",
            "event": "request",
            **self._static,
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "source": source,
            "dependency_error": dependency_error,
        }
        if reason:
            line["reason"] = reason
        if client:
            line["client"] = client
        timestamp_ms = int(now * 1000)
        if self._emf_sink is not None:
            properties = {k: v for k, v in line.items() if k in _EMF_PROPERTIES}
            self._emf_sink.send(
                emf_document(values, timestamp_ms=timestamp_ms, log_group=self._emf_log_group, **properties)
            )
            self._write(line)
        else:
            self._write(emf_document(values, timestamp_ms=timestamp_ms, log_group=self._emf_log_group, **line))

    def _write(self, record: dict[str, Any]) -> None:
        text = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a full disk or closed stdout must not take the service down with it

    def close(self) -> None:
        """Close the EMF socket and the stream unless it is stdout/stderr."""
        if self._emf_sink is not None:
            self._emf_sink.close()
        if self._stream not in (sys.stdout, sys.stderr):
            with self._lock:
                self._stream.close()


def _iso(seconds: float) -> str:
    """UTC ISO-8601 with milliseconds."""
    whole = time.gmtime(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", whole) + f".{int(seconds % 1 * 1000):03d}Z"
