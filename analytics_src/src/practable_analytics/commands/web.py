"""``web``: the instructor's class view, a read-only web server over the store the loggers write.

Pages: ``/`` (every course with data), ``/courses/<exp>/<course>`` (one row per student, refreshed
live), ``/courses/<exp>/<course>/students/<user>`` (the student's graph beside the likely task's).
JSON API with the same numbers under ``/api/``. The database is opened read-only (``mode=ro``); the
server listens on loopback by default: reach it through an SSH tunnel
(``ssh -L 8090:127.0.0.1:8090 host``) or the role's optional nginx with TLS and basic auth.
"""

import argparse
import logging
import os
import signal
from pathlib import Path
from typing import Tuple

from practable_analytics.commands.common import CommandError, add_db_graphs, load_registry
from practable_analytics.store import Store, StoreError

LOG = logging.getLogger(__name__)
DEFAULT_LISTEN = "127.0.0.1:8090"
LISTEN_ENV = "PRACTABLE_ANALYTICS_WEB_LISTEN"
THREADS = 8


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``web`` subcommand."""
    parser = subparsers.add_parser(
        "web",
        help="serve the instructor's class view (read-only web pages and JSON API)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_graphs(parser)
    parser.add_argument(
        "--listen",
        default=os.environ.get(LISTEN_ENV) or DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on (default: ${LISTEN_ENV} or {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--stuck-minutes",
        type=float,
        default=10.0,
        metavar="N",
        help="an active student with no new transition type for N minutes is stuck (default 10)",
    )
    parser.set_defaults(func=run)


def parse_listen(value: str) -> Tuple[str, int]:
    """(host, port) of ``HOST:PORT`` (``[::1]:8090`` for IPv6); CommandError(2) otherwise."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--listen: expected HOST:PORT, got {value!r}", 2)
    return host, int(port)


def run(args: argparse.Namespace) -> int:
    """Check the database opens read-only, then serve until stopped."""
    if not args.db:
        raise CommandError("--db is required (or set PRACTABLE_ANALYTICS_DB)", 2)
    if not args.stuck_minutes > 0:
        raise CommandError("--stuck-minutes must be positive", 2)
    host, port = parse_listen(args.listen)
    registry = load_registry(args)
    if not Path(args.db).is_file():
        raise CommandError(f"{args.db}: no such database file")
    try:
        Store.read_only(args.db).close()
    except StoreError as exc:
        raise CommandError(str(exc)) from exc
    try:
        import waitress  # noqa: PLC0415 (the web extra: only this command needs it)

        from practable_analytics.web.app import create_app  # noqa: PLC0415
    except ImportError as exc:
        raise CommandError(
            f"the web extra is not installed ({exc}): pip install 'practable-analytics[web]'"
        ) from exc
    app = create_app(args.db, registry, stuck_minutes=args.stuck_minutes)
    signal.signal(signal.SIGTERM, _stop)  # waitress stops its threads on SystemExit
    LOG.info("class view of %s on http://%s:%d/ (read-only)", args.db, host, port)
    waitress.serve(app, host=host, port=port, threads=THREADS, ident="practable-analytics", _quiet=True)
    LOG.info("class view stopped")
    return 0


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)
