from typing import Iterator

import pytest

import relay_standin as rs


@pytest.fixture
def host() -> Iterator[rs.Running]:
    running = rs.start_host(backoff_initial=0.05, backoff_max=0.2)
    yield running
    running.stop()


SECRET = "test-secret"


@pytest.fixture
def remote() -> Iterator[rs.RunningRemote]:
    running = rs.start_remote(SECRET)
    yield running
    running.stop()
