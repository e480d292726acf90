"""``practable-analytics serve``: log and answer one or many relay streams until stopped."""

import argparse
import faulthandler
import logging
import os
import signal
from types import FrameType
from typing import Optional

from practable_analytics.commands.common import fail
from practable_analytics.service.config import ENV_PREFIX, ConfigError, add_arguments, resolve
from practable_analytics.service.runner import MetricsListenError, Service, ServiceError, StopFlag

LOG = logging.getLogger("practable_analytics.serve")


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "serve",
        help="store and answer the analytics streams of lab devices (runs until SIGTERM)",
        description="Connect to relay streams, store every message, answer dashboard requests. "
        "Every option can also be set as a PRACTABLE_ANALYTICS_* environment variable; see docs/serve.md.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    level = os.environ.get(ENV_PREFIX + "LOG_LEVEL", "").upper()
    if getattr(args, "log_level", "INFO") == "INFO" and level in ("DEBUG", "INFO", "WARNING", "ERROR"):
        logging.getLogger().setLevel(level)
    try:
        config = resolve(args)
    except ConfigError as exc:
        return fail(str(exc), 2)

    # numpy and the engine load only when serving, not for every command's --help.
    from practable_analytics.experiments import DefinitionError, Registry  # noqa: PLC0415
    from practable_analytics.responses import CONTENTS  # noqa: PLC0415
    from practable_analytics.service.processing import HandlerProcessor  # noqa: PLC0415
    from practable_analytics.service.stats import EventCounts  # noqa: PLC0415

    try:
        registry = Registry.load(extra_dir=config.graphs)
    except DefinitionError as exc:
        return fail(f"invalid graphs: {exc}", 2)
    except OSError as exc:
        return fail(f"cannot read graphs: {exc}", 2)

    stop = StopFlag()

    def on_signal(signum: int, _frame: Optional[FrameType]) -> None:
        # Only set a flag: no locks, no logging (the main thread may be inside either).
        stop.set(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID`: every thread's stack to stderr, for diagnosis
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    from practable_analytics.service.lock import StreamLockError, StreamLocks  # noqa: PLC0415

    try:  # one logger per stream and database; held until the process ends
        locks = StreamLocks(config.db, [s.name for s in config.streams]).acquire()  # noqa: F841
    except StreamLockError as exc:
        return fail(str(exc), 2)
    counts = EventCounts(CONTENTS)  # committed events, for the status file and the metrics
    service = Service(config, lambda: HandlerProcessor(config.db, registry, counts), counts)
    try:
        service.start()
    except MetricsListenError as exc:
        return fail(str(exc), 1)
    except ServiceError as exc:
        return fail(f"cannot open database: {exc}", 2)
    return service.run(stop)
