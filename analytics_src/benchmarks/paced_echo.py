"""The rig's floor for bench_hosts.py: in place of a serve process, a client of one stream that answers
each all_feedback at once with five empty responses, 1 ms apart (serve's pacing), storing nothing.

Run by ``bench_hosts.py --floor`` as ``python benchmarks/paced_echo.py URL STATUS_FILE``; it writes the
status file serve would (``streams.<name>.connected``) once connected, so the rig waits for it alike.
What it measures is everything of an answer's round trip that is not serve: the relay stand-in's hops,
the five paced sends, the clients' reads on this machine."""

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from service_helpers import relay_standin  # noqa: E402

from practable_analytics import responses  # noqa: E402
from practable_analytics.service.threads import tighten_timer_slack  # noqa: E402

SPACING_S = 0.001


def main() -> int:
    url, status = sys.argv[1], Path(sys.argv[2])
    tighten_timer_slack()  # as serve does: exact 1 ms waits
    client = relay_standin.WSClient.connect(url)
    name = url.rsplit("/", 1)[-1]
    status.write_text(json.dumps({"streams": {name: {"connected": True}}}))
    while True:
        try:
            text = client.recv()
        except (OSError, relay_standin.ConnectionClosed):
            return 0
        if not isinstance(text, str) or "all_feedback" not in text:
            continue
        user = json.loads(text).get("user")
        next_send = 0.0
        for content in responses.ALL_FEEDBACK:
            wait = next_send - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            next_send = time.perf_counter() + SPACING_S
            client.send_text(json.dumps({"type": "response", "content": content, "user": user}))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
