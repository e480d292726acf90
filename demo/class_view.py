"""make demo, last step: the instructor's class view deployed in the demo container.

Prints the class-view URL and the SSH tunnel an instructor would use, and takes a screenshot of the
course page with Debian's headless chromium run in the container's network namespace (where the
service listens on loopback, as on a real host), next to the task-graph PNG in demo/out.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from practable_analytics.web.headless import chromium_flags

LISTEN = "127.0.0.1:8090"
FLAGS = chromium_flags("--hide-scrollbars", "--window-size=1400,900")


def in_container_net(pid: str, argv: List[str]) -> subprocess.CompletedProcess:
    """Run a host program in the container's network namespace (its loopback is the service's)."""
    return subprocess.run(
        ["nsenter", "-t", pid, "-n", *argv], capture_output=True, text=True, timeout=90, check=False
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--container", default="practable-demo")
    parser.add_argument("--out", default="demo/out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pid = subprocess.run(
        ["podman", "inspect", "-f", "{{.State.Pid}}", args.container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    fetch = f"import urllib.request;print(urllib.request.urlopen('http://{LISTEN}/api/courses',timeout=10).read().decode())"
    got = in_container_net(pid, [sys.executable, "-c", fetch])
    if got.returncode != 0:
        print(f"--- class view: not answering on {LISTEN} in {args.container}: {got.stderr.strip()[-300:]}")
        return 1
    courses = sorted(json.loads(got.stdout), key=lambda c: c["last_event"] or 0, reverse=True)
    print("--- the instructor's class view (analytics-web.service, loopback only)")
    for c in courses:
        print(
            f"    http://{LISTEN}/courses/{c['exp']}/{c['course']}"
            f"  ({c['students']} students, {c['events']} events)"
        )
    print(
        f"    on a real host, from your machine: ssh -L 8090:{LISTEN} <user>@<host>  then open http://{LISTEN}/"
    )
    print(
        f"    here: sudo nsenter -t $(podman inspect -f '{{{{.State.Pid}}}}' {args.container}) -n curl -s http://{LISTEN}/api/courses"
    )
    chromium = shutil.which("chromium")
    if not courses or not chromium:
        print(
            "    (no screenshot: "
            + ("no course has data yet" if not courses else "chromium is not installed")
            + ")"
        )
        return 0
    c = courses[0]
    png = (out / f"class-view-{c['exp']}-{c['course']}.png").resolve()
    shot = in_container_net(
        pid, [chromium, *FLAGS, f"--screenshot={png}", f"http://{LISTEN}/courses/{c['exp']}/{c['course']}"]
    )
    if shot.returncode != 0 or not png.exists():
        print(f"    (screenshot failed: {shot.stderr.strip()[-300:]})")
        return 0
    print(f"    {png}  (screenshot of the course page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
