"""serve's defaults are declared once (ServeConfig): the options, the environment and the service's
constructors all take them from there."""

import argparse
from pathlib import Path

from practable_analytics.service.backoff import Backoff
from practable_analytics.service.config import ServeConfig, add_arguments, resolve
from practable_analytics.service.inbox import Inbox
from practable_analytics.service.sender import Sender
from practable_analytics.service.stats import StreamStats, WorkerStats
from practable_analytics.service.worker import Worker


def test_resolved_defaults_are_serveconfigs_and_the_constructors_agree(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--stream", "ws://127.0.0.1:1/ws/a", "--db", str(tmp_path / "a.db")])
    config = resolve(args, environ={})
    bare = ServeConfig(streams=config.streams, db=config.db)
    assert config == bare  # every option left out resolves to the dataclass's own default
    sender = Sender("a", StreamStats("a", "ws://127.0.0.1:1/ws/a"))
    assert (sender.spacing_s, sender.ttl_s) == (config.send_spacing_s, config.answer_ttl_s)
    inbox = Inbox(1)
    assert (inbox.max_items, inbox.max_bytes) == (config.queue_size, config.queue_bytes)
    backoff = Backoff()
    assert (backoff.initial_s, backoff.cap_s) == (config.backoff_initial_s, config.backoff_max_s)
    assert Backoff.for_url("ws://127.0.0.1:1/ws/a").cap_s == config.backoff_local_max_s
    worker = Worker(
        inbox=inbox, make_processor=lambda: None, names=["a"], senders=[sender],  # type: ignore[arg-type,return-value]
        stream_stats=[sender.stats], stats=WorkerStats(),
    )  # fmt: skip
    assert (worker.batch_size, worker.request_rate, worker.request_burst) == (
        config.batch_size,
        config.request_rate,
        config.request_burst,
    )


def test_an_option_overrides_in_its_own_unit(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--stream", "ws://h/ws/a", "--db", str(tmp_path / "a.db"), "--send-spacing-ms", "2.5"]
    config = resolve(parser.parse_args(argv), environ={"PRACTABLE_ANALYTICS_BATCH_SIZE": "7"})
    assert config.send_spacing_s == 0.0025
    assert config.batch_size == 7
