"""Settings of ``serve``: command line first, then PRACTABLE_ANALYTICS_* environment variables.

Every option has an environment variable so a systemd template unit can set them
(``analytics-logger@spin30.service``). Problems are ConfigError with a one-line reason; the command
turns them into exit status 2.
"""

import argparse
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from practable_analytics.service.metrics import parse_listen

ENV_PREFIX = "PRACTABLE_ANALYTICS_"
MAX_STREAMS = 1000
_STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


class ConfigError(ValueError):
    """A setting that makes serving impossible (exit status 2)."""


@dataclass(frozen=True)
class StreamConfig:
    name: str  # stored with every event (Event.stream) and used in logs and status
    url: str


@dataclass(frozen=True)
class ServeConfig:
    streams: Tuple[StreamConfig, ...]
    db: Path
    graphs: Optional[Path] = None
    status_file: Optional[Path] = None
    status_interval_s: float = 1.0
    send_spacing_s: float = 0.001
    queue_size: int = 100_000
    queue_bytes: int = 256 * 1024 * 1024
    batch_size: int = 300
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 10.0
    backoff_local_max_s: float = 0.5
    connect_timeout_s: float = 5.0
    answer_ttl_s: float = 10.0
    stop_timeout_s: float = 25.0
    request_rate: float = 5.0  # answered requests per second per (stream, user), sustained
    request_burst: float = 20.0  # ... and in a burst
    metrics_listen: Optional[Tuple[str, int]] = None  # (host, port) of GET /metrics; None: off
    metrics_textfile: Optional[Path] = None  # node_exporter textfile written every status interval


# The scalar options: (flag, ServeConfig field, env suffix, parser, unit, help). Each default is
# ServeConfig's (declared once, above); ``unit`` converts the option's value to the field's (the
# spacing option is in ms, the field in s). The service's constructors default to the same fields.
_SCALARS: Tuple[Tuple[str, str, str, Callable[[str], Any], float, str], ...] = (
    (
        "--status-interval",
        "status_interval_s",
        "STATUS_INTERVAL",
        float,
        1.0,
        "seconds between status writes",
    ),
    (
        "--send-spacing-ms",
        "send_spacing_s",
        "SEND_SPACING_MS",
        float,
        0.001,
        "least gap between sent messages, ms",
    ),
    ("--queue-size", "queue_size", "QUEUE_SIZE", int, 1, "inbox bound in messages"),
    ("--queue-bytes", "queue_bytes", "QUEUE_BYTES", int, 1, "inbox bound in bytes"),
    ("--batch-size", "batch_size", "BATCH_SIZE", int, 1, "most messages committed in one transaction"),
    (
        "--backoff-initial",
        "backoff_initial_s",
        "BACKOFF_INITIAL",
        float,
        1.0,
        "first reconnect delay ceiling, s",
    ),
    ("--backoff-max", "backoff_max_s", "BACKOFF_MAX", float, 1.0, "reconnect delay cap, s"),
    (
        "--backoff-local-max",
        "backoff_local_max_s",
        "BACKOFF_LOCAL_MAX",
        float,
        1.0,
        "reconnect delay cap for a relay on this machine (loopback URL), s",
    ),
    ("--connect-timeout", "connect_timeout_s", "CONNECT_TIMEOUT", float, 1.0, "websocket connect timeout, s"),
    ("--answer-ttl", "answer_ttl_s", "ANSWER_TTL", float, 1.0, "how long an answer waits for a reconnect, s"),
    ("--stop-timeout", "stop_timeout_s", "STOP_TIMEOUT", float, 1.0, "most seconds a SIGTERM stop may take"),
    (
        "--request-rate",
        "request_rate",
        "REQUEST_RATE",
        float,
        1.0,
        "requests answered per s per stream and user",
    ),
    ("--request-burst", "request_burst", "REQUEST_BURST", float, 1.0, "request burst per stream and user"),
)


def option_default(field: str, unit: float = 1.0) -> Any:
    """The built-in default of a scalar option, in the option's unit (ServeConfig's field / unit)."""
    value = getattr(ServeConfig, field)
    return value if unit == 1 else round(value / unit, 9)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The serve options (defaults None: resolve() applies environment, then built-in defaults)."""
    p = parser
    p.add_argument(
        "--stream",
        action="append",
        metavar="URL",
        help="relay stream to serve, e.g. ws://127.0.0.1:8888/ws/spin30 (repeat for more; "
        "env PRACTABLE_ANALYTICS_STREAMS, space or comma separated). NAME=URL sets the stream name, "
        "otherwise it is the URL path after /ws/",
    )
    p.add_argument("--db", metavar="PATH", help="SQLite database (env PRACTABLE_ANALYTICS_DB)")
    p.add_argument(
        "--graphs",
        metavar="DIR",
        help="extra experiment definitions and graphs (env PRACTABLE_ANALYTICS_GRAPHS)",
    )
    p.add_argument(
        "--status-file",
        metavar="PATH",
        help="JSON status file rewritten every interval (env PRACTABLE_ANALYTICS_STATUS_FILE)",
    )
    p.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (host defaults to 127.0.0.1; "
        "off when empty; env PRACTABLE_ANALYTICS_METRICS_LISTEN)",
    )
    p.add_argument(
        "--metrics-textfile",
        metavar="PATH",
        help="write the metrics for node_exporter's textfile collector every status interval "
        "(a *.prom file; env PRACTABLE_ANALYTICS_METRICS_TEXTFILE)",
    )
    for flag, field, suffix, convert, unit, text in _SCALARS:
        p.add_argument(
            flag,
            dest=field,
            type=convert,
            metavar="N",
            help=f"{text} (default {option_default(field, unit):g}; env {ENV_PREFIX}{suffix})",
        )


def stream_from_text(text: str) -> StreamConfig:
    """`URL` or `NAME=URL` -> StreamConfig; the URL must be ws:// or wss:// with a host."""
    name: Optional[str] = None
    url = text.strip()
    if "=" in url and not url.split("=", 1)[0].lower().startswith(("ws:", "wss:")):
        name, url = (part.strip() for part in url.split("=", 1))
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"invalid stream URL {url!r}: {exc}") from exc
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"invalid stream URL {url!r}: expected ws://HOST[:PORT]/ws/STREAM")
    if port == 0:
        raise ConfigError(f"invalid stream URL {url!r}: port 0")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ConfigError(f"invalid stream URL {url!r}: contains spaces or control characters")
    if name is None:
        path = parts.path
        name = path[len("/ws/") :] if path.startswith("/ws/") else path.lstrip("/")
    if not _STREAM_NAME.match(name):
        raise ConfigError(f"invalid stream name {name!r} for {url!r} (use NAME=URL)")
    return StreamConfig(name=name, url=url)


def _split_streams(text: str) -> List[str]:
    return [part for part in re.split(r"[\s,]+", text) if part]


def _check_db(path: Path) -> Path:
    path = path.expanduser()
    if path.is_dir():
        raise ConfigError(f"database path {path} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"database directory {parent} does not exist")
    if path.exists():
        if not os.access(str(path), os.R_OK | os.W_OK):
            raise ConfigError(f"database {path} is not readable and writable")
    if not os.access(str(parent), os.W_OK | os.X_OK):
        # SQLite in WAL mode creates -wal and -shm files next to the database.
        raise ConfigError(f"database directory {parent} is not writable")
    return path


def _check_status_file(path: Path) -> Path:
    path = path.expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigError(f"status file {path} is a directory")
    if not parent.is_dir() or not os.access(str(parent), os.W_OK | os.X_OK):
        raise ConfigError(f"status file directory {parent} is missing or not writable")
    return path


def _check_textfile(path: Path) -> Path:
    path = _check_status_file(path)  # same rules: a writable directory, not a directory itself
    if path.suffix != ".prom":
        raise ConfigError(f"metrics textfile {path} must end in .prom (node_exporter reads only those)")
    return path


def resolve(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> ServeConfig:
    """Merge the command line over the environment over defaults, and validate everything."""
    env = os.environ if environ is None else environ

    def from_env(suffix: str) -> Optional[str]:
        value = env.get(ENV_PREFIX + suffix)
        return value if value not in (None, "") else None

    texts: List[str] = []
    for value in getattr(args, "stream", None) or []:
        texts.extend(_split_streams(value))
    if not texts:
        texts = _split_streams(from_env("STREAMS") or "")
    if not texts:
        raise ConfigError("no stream given (--stream URL or PRACTABLE_ANALYTICS_STREAMS)")
    if len(texts) > MAX_STREAMS:
        raise ConfigError(f"too many streams ({len(texts)} > {MAX_STREAMS})")
    streams = tuple(stream_from_text(t) for t in texts)
    names = [s.name for s in streams]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"stream given twice: {', '.join(duplicates)}")

    db_text = getattr(args, "db", None) or from_env("DB")
    if not db_text:
        raise ConfigError("no database given (--db PATH or PRACTABLE_ANALYTICS_DB)")
    db = _check_db(Path(db_text))

    graphs_text = getattr(args, "graphs", None) or from_env("GRAPHS")
    graphs: Optional[Path] = None
    if graphs_text:
        graphs = Path(graphs_text).expanduser()
        if not graphs.is_dir():
            raise ConfigError(f"graphs directory {graphs} does not exist")

    status_text = getattr(args, "status_file", None) or from_env("STATUS_FILE")
    status_file = _check_status_file(Path(status_text)) if status_text else None

    try:
        metrics_listen = parse_listen(
            getattr(args, "metrics_listen", None) or from_env("METRICS_LISTEN") or ""
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    textfile_text = getattr(args, "metrics_textfile", None) or from_env("METRICS_TEXTFILE")
    metrics_textfile = _check_textfile(Path(textfile_text)) if textfile_text else None

    values = {}
    for _flag, dest, suffix, convert, unit, _text in _SCALARS:
        value = getattr(args, dest, None)
        if value is None:
            text = from_env(suffix)
            if text is not None:
                try:
                    value = convert(text)
                except ValueError as exc:
                    raise ConfigError(
                        f"{ENV_PREFIX}{suffix}={text!r} is not a valid {convert.__name__}"
                    ) from exc
            else:
                value = option_default(dest, unit)
        values[dest] = value

    flags = {dest: flag[2:] for flag, dest, _e, _c, _u, _t in _SCALARS}

    def positive(dest: str, allow_zero: bool = False) -> None:
        value = values[dest]
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(f"{flags[dest]} must be a positive number, got {value}")

    for dest in ("status_interval_s", "queue_size", "queue_bytes", "batch_size", "backoff_initial_s",
                 "backoff_max_s", "backoff_local_max_s", "connect_timeout_s", "answer_ttl_s",
                 "stop_timeout_s", "request_rate", "request_burst"):  # fmt: skip
        positive(dest)
    positive("send_spacing_s", allow_zero=True)
    if values["send_spacing_s"] > 1000:
        raise ConfigError("send-spacing-ms above 1000 ms makes answers unusably slow")
    if values["backoff_max_s"] < values["backoff_initial_s"]:
        raise ConfigError("backoff-max must be at least backoff-initial")

    return ServeConfig(
        streams=streams,
        db=db,
        graphs=graphs,
        status_file=status_file,
        **{
            dest: values[dest] * unit if unit != 1 else values[dest]
            for _f, dest, _e, _c, unit, _t in _SCALARS
        },
        metrics_listen=metrics_listen,
        metrics_textfile=metrics_textfile,
    )
