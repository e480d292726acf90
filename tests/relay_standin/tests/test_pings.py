"""Pings every ping_interval to each /ws client, closed when no pong comes within pong_wait."""

import socket
import time

import relay_standin as rs

from .helpers import client_stats, wait_for


def test_defaults_match_the_real_host() -> None:
    options = rs.HostOptions()
    assert (options.ping_interval, options.pong_wait, options.write_deadline) == (54.0, 60.0, 10.0)


def test_reading_client_is_pinged_and_stays() -> None:
    with rs.start_host(ping_interval=0.15, pong_wait=0.5) as host:
        client = rs.WSClient.connect(host.ws_url("ws/p"))
        end = time.monotonic() + 1.2
        while time.monotonic() < end:
            try:
                client.recv(0.05)  # reading answers the pings
            except socket.timeout:
                pass
        assert client.pings_received >= 4
        assert client_stats(host, "p", client)["connected"]


def test_client_that_never_pongs_is_closed_after_pong_wait() -> None:
    with rs.start_host(ping_interval=0.15, pong_wait=0.5) as host:
        silent = rs.WSClient.connect(host.ws_url("ws/p"), auto_pong=False)
        idle = rs.WSClient.connect(host.ws_url("ws/p"))  # answers pings only while reading: never reads
        started = time.monotonic()
        wait_for(lambda: len(host.stats().get("p", {}).get("clients", {})) == 2)
        closed_at = None
        while time.monotonic() - started < 3:
            try:
                silent.recv(0.05)
            except socket.timeout:
                continue
            except rs.ConnectionClosed:
                closed_at = time.monotonic() - started
                break
        assert closed_at is not None and 0.4 <= closed_at < 2.0
        assert silent.pings_received >= 2
        stats = client_stats(host, "p", silent)
        assert (stats["connected"], stats["closed_reason"]) == (False, "no pong")
        wait_for(lambda: not client_stats(host, "p", idle)["connected"], timeout=3)
        assert client_stats(host, "p", idle)["closed_reason"] == "no pong"
