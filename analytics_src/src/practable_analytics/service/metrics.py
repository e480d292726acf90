"""Prometheus metrics of ``serve``, derived from the status document at scrape/write time.

The status dict (``Service.status()``, :func:`practable_analytics.service.status.build`) is the one
source of truth: every metric here is read from it, never from the threads' internals, so the JSON
status file, ``practable-analytics status`` and a Prometheus scrape always agree.

Two outputs, either or both:

- ``--metrics-listen HOST:PORT``: an HTTP server (the official ``prometheus-client``'s WSGI app on a
  registry of this Service's own, no global registry) answering ``GET /metrics``;
- ``--metrics-textfile PATH``: the same text in node_exporter's textfile-collector format, rewritten
  atomically (temporary file in the same directory, then rename) every status interval.
"""

import ipaddress
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from practable_analytics.service.files import replace_file
from practable_analytics.service.threads import name_os_thread

LOG = logging.getLogger(__name__)

PREFIX = "practable_analytics_"
DEFAULT_HOST = "127.0.0.1"
# The per-device loggers listen on DEFAULT_BASE_PORT + their index in the device list (the role's
# analytics_metrics_base_port); 9841 is free in Prometheus' list of default exporter ports.
DEFAULT_BASE_PORT = 9841
# Why an answer never went out: the stream error kind in the status file -> the metric's reason label.
DROP_REASONS: Tuple[Tuple[str, str], ...] = (
    ("answer_overflow", "backlog_full"),
    ("answer_expired", "expired"),
    ("answer_unsent_at_stop", "stopping"),
    ("send_failed", "send_failed"),
    ("encode_failed", "encode_failed"),
)
STORE_ERROR_KINDS = ("store_failed",)

StatusSource = Callable[[], Mapping[str, Any]]


def parse_listen(text: str) -> Optional[Tuple[str, int]]:
    """``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` or ``PORT`` -> (host, port); empty -> None (off).

    The host defaults to loopback: exposing the metrics elsewhere is a deliberate choice.
    Raises ValueError with a one-line reason.
    """
    text = text.strip()
    if not text:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host or DEFAULT_HOST
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"metrics listen address {text!r}: expected HOST:PORT with a port in 1..65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"metrics listen address {text!r}: the host must be an IP address") from None
    return host, int(port_text)


def _number(value: object) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return 0.0


def families(doc: Mapping[str, Any]) -> List[Any]:
    """Metric families (prometheus_client objects) for one status document."""
    from prometheus_client.core import (  # noqa: PLC0415 (imported by serve only when metrics are on)
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    def counter(name: str, text: str, labels: Iterable[str] = ("stream",)) -> Any:
        return CounterMetricFamily(PREFIX + name, text, labels=list(labels))

    def gauge(name: str, text: str, labels: Iterable[str] = ("stream",)) -> Any:
        return GaugeMetricFamily(PREFIX + name, text, labels=list(labels))

    received = counter("messages_received", "Data frames read from the relay stream.")
    stored = counter("messages_stored", "Events of this stream committed to the database.")
    invalid = counter("messages_invalid", "Messages stored as invalid events (not JSON, bad fields, binary).")
    requests = counter("requests", "Valid dashboard requests stored, by content.", ("stream", "content"))
    answers = counter("answers_sent", "Answers whose every message was sent.")
    dropped = counter("requests_dropped", "Answers that never went out, by reason.", ("stream", "reason"))
    connected = gauge("stream_connected", "1 while the stream's websocket is connected.")
    reconnects = counter("reconnects", "Connections made after the first one.")
    last_event = gauge("last_event_timestamp_seconds", "Receive time of the last data frame (epoch s).")
    latency = HistogramMetricFamily(
        PREFIX + "answer_seconds", "Request received to last answer message sent, seconds.", labels=["stream"]
    )
    for name, s in sorted((doc.get("streams") or {}).items()):
        labels = [str(name)]
        received.add_metric(labels, _number(s.get("messages_received")))
        stored.add_metric(labels, _number(s.get("stored")))
        invalid.add_metric(labels, _number(s.get("invalid")))
        for content, n in sorted((s.get("requests_by_content") or {}).items()):
            requests.add_metric([str(name), str(content)], _number(n))
        answers.add_metric(labels, _number(s.get("answers_sent")))
        errors = s.get("errors") or {}
        for kind, reason in DROP_REASONS:
            dropped.add_metric([str(name), reason], _number(errors.get(kind)))
        connected.add_metric(labels, _number(bool(s.get("connected"))))
        reconnects.add_metric(labels, max(0.0, _number(s.get("connects")) - 1.0))
        if s.get("last_event_epoch") is not None:
            last_event.add_metric(labels, _number(s.get("last_event_epoch")))
        hist = s.get("answer_seconds")
        if isinstance(hist, dict) and hist.get("le") is not None:
            buckets = [(repr(float(b)), _number(c)) for b, c in zip(hist["le"], hist["counts"])]
            buckets.append(("+Inf", _number(hist.get("count"))))
            latency.add_metric(labels, buckets, _number(hist.get("sum")))

    queue = doc.get("queue") or {}
    worker_errors = (doc.get("worker") or {}).get("errors") or {}
    depth = gauge("inbox_depth", "Messages read and not yet handled by the worker.", ())
    depth.add_metric([], _number(queue.get("depth")))
    high_water = gauge("inbox_high_water", "Most messages the inbox has held since the start.", ())
    high_water.add_metric([], _number(queue.get("high_water")))
    limit = gauge("inbox_limit", "The inbox bound in messages (--queue-size).", ())
    limit.add_metric([], _number(queue.get("limit")))
    store_errors = counter("store_errors", "Batches the store failed to commit.", ())
    store_errors.add_metric([], sum(_number(worker_errors.get(k)) for k in STORE_ERROR_KINDS))
    store_bytes = gauge("store_bytes", "Database file plus its write-ahead log, bytes.", ())
    store_bytes.add_metric([], _number(doc.get("db_bytes")))
    build = gauge("build_info", "The practable-analytics version serving (always 1).", ("version",))
    build.add_metric([str(doc.get("package_version") or "unknown")], 1.0)
    up = gauge("service_running", "1 while the service state is running (0 while starting or stopping).", ())
    up.add_metric([], 1.0 if doc.get("state") == "running" else 0.0)
    updated = gauge("status_updated_timestamp_seconds", "When this status was taken (epoch s).", ())
    updated.add_metric([], _number(doc.get("updated_epoch")))
    return [
        received, stored, invalid, requests, answers, dropped, connected, reconnects, last_event, latency,
        depth, high_water, limit, store_errors, store_bytes, build, up, updated,
    ]  # fmt: skip


class StatusCollector:
    """A prometheus_client collector reading the status source at every collection."""

    def __init__(self, source: StatusSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Any]:
        yield from families(self._source())

    def describe(self) -> List[Any]:
        return []  # unchecked collector: its families depend on the streams configured


def registry_for(source: StatusSource) -> Any:
    """A registry of its own (no process-global state) holding only the status collector."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(source))  # type: ignore[arg-type]
    return registry


def exposition(doc: Mapping[str, Any]) -> bytes:
    """The Prometheus text format of one status document."""
    from prometheus_client import generate_latest  # noqa: PLC0415

    fixed: Dict[str, Any] = dict(doc)
    return bytes(generate_latest(registry_for(lambda: fixed)))


def write_textfile(path: Path, doc: Mapping[str, Any]) -> None:
    """Write the metrics for node_exporter's textfile collector: a temporary file in the same
    directory (the collector reads only ``*.prom``), flushed, then renamed over ``path``."""
    replace_file(path, exposition(doc))


class MetricsServer:
    """``GET /metrics`` over HTTP on one address, in a daemon thread; everything else is 404."""

    def __init__(self, host: str, port: int, source: StatusSource) -> None:
        self.host = host
        self.requested_port = port
        self._source = source
        self._httpd: Optional[Any] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        return int(self._httpd.server_address[1]) if self._httpd is not None else self.requested_port

    def start(self) -> None:
        """Bind and serve; OSError when the address cannot be bound."""
        import socket  # noqa: PLC0415
        from wsgiref.simple_server import WSGIRequestHandler, make_server  # noqa: PLC0415

        from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app  # noqa: PLC0415

        app = make_wsgi_app(registry_for(self._source))

        def routed(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if environ.get("PATH_INFO") not in ("/metrics", "/metrics/"):
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"only /metrics here\n"]
            return app(environ, start_response)

        class Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("metrics %s: " + format, self.client_address[0], *args)

        class Server(ThreadingWSGIServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        self._httpd = make_server(self.host, self.requested_port, routed, Server, handler_class=Quiet)
        httpd = self._httpd

        def serve() -> None:
            name_os_thread("serve-metrics")
            httpd.serve_forever(poll_interval=0.2)

        self._thread = threading.Thread(target=serve, name="metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(2.0)


class Exporter:
    """What ``serve`` runs for metrics: the HTTP server and/or the textfile, per its configuration."""

    def __init__(
        self, source: StatusSource, listen: Optional[Tuple[str, int]], textfile: Optional[Path]
    ) -> None:
        self.server = MetricsServer(listen[0], listen[1], source) if listen is not None else None
        self.textfile = textfile
        self._textfile_failed = False

    def start(self) -> None:
        if self.server is not None:
            self.server.start()
            LOG.info("metrics on http://%s:%d/metrics", self.server.host, self.server.port)

    def status_written(self, doc: Mapping[str, Any]) -> None:
        """Called with each status document taken for the status file (every interval)."""
        if self.textfile is None:
            return
        try:
            write_textfile(self.textfile, doc)
        except OSError as exc:
            if not self._textfile_failed:
                LOG.warning("cannot write metrics textfile %s: %s", self.textfile, exc)
                self._textfile_failed = True
            return
        if self._textfile_failed:
            LOG.info("metrics textfile %s written again", self.textfile)
            self._textfile_failed = False

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
