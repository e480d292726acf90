"""import-legacy on a hostile directory: ids from file names pass the network id rule, echoed names
are escaped, every read is bounded (the first line of a log too), a symbolic link or FIFO swapped in
after the listing is refused, and feedback rows are counted by the same rule as live feedback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE_LOGS

from practable_analytics.cli import main
from practable_analytics.experiments import Registry
from practable_analytics.legacy import MAX_LINE_BYTES, import_dir, open_regular
from practable_analytics.messages import parse_message
from practable_analytics.store import Store

SAMPLE = SAMPLE_LOGS / "test-test00-spinner-engdes1.json"
FEEDBACK_CSV = "state,subject,t\nCurious,UI,1673351988600\n"


def test_ids_in_file_names_must_pass_the_network_id_rule(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    evil_user = "x\x1b]0;owned\x07\x1b[2J"
    (data / f"{evil_user}-spinner-engdes1-feedback.csv").write_text(FEEDBACK_CSV)
    (data / "ok-spinner-cie\x7f3-feedback.csv").write_text(FEEDBACK_CSV)
    (data / "ok-spinner-engdes1-adjacency\x1b.csv").write_text("")
    # a log whose lines carry no user: the name's user would be stored if it were accepted
    lines = [json.loads(x) for x in SAMPLE.read_text().splitlines() if x.strip()]
    for m in lines:
        del m["user"]
    (data / f"{evil_user}-test00-spinner-engdes1.json").write_text("\n".join(map(json.dumps, lines)))
    (data / "good-test00-spinner-engdes1.json").write_text("\n".join(map(json.dumps, lines)))
    db = tmp_path / "a.db"
    assert main(["import-legacy", "--db", str(db), str(data)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x7f" not in out
    assert "x\\x1b]0;owned\\x07\\x1b[2J-spinner-engdes1-feedback.csv [other]" in out
    assert "x\\x1b]0;owned\\x07\\x1b[2J-test00-spinner-engdes1.json [other]" in out
    assert "ok-spinner-cie\\x7f3-feedback.csv [other]" in out
    assert out.count("with a known experiment and valid ids") == 4
    with Store(db) as store:
        assert [k[0] for k in store.keys("good")] == ["good"]
        users = {r[4] for chunk in store.iter_events() for r in chunk}
    assert users == {"good"}  # nothing of the invalid names was stored
    assert main(["import-legacy", "--db", str(db), str(tmp_path / "no\x1bdir")]) == 2
    assert "no\\x1bdir: not a directory" in capsys.readouterr().err


def test_a_huge_first_line_is_never_held_whole(tmp_path: Path) -> None:
    """The first line is read for the file ordering too: bounded like every other line. Peak RSS of a
    child importing a 48 MiB first line stays within a few MiB of importing the sample alone."""
    script = (  # VmHWM: this process's peak (ru_maxrss would include the forking parent's)
        "import sys\n"
        "from pathlib import Path\n"
        "from practable_analytics.experiments import Registry\n"
        "from practable_analytics.legacy import import_dir\n"
        "from practable_analytics.store import Store\n"
        "with Store(sys.argv[2]) as store:\n"
        "    report = import_dir(store, Registry.load(), Path(sys.argv[1]))\n"
        "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM:')][0]\n"
        "print(int(hwm.split()[1]))\n"
        "print(report.render())\n"
    )
    peaks = {}
    for case, first in (("small", b"\n"), ("huge", b'{"user": "' + b"u" * (48 << 20) + b'"}\n')):
        data = tmp_path / case
        data.mkdir()
        with (data / "test-test00-spinner-engdes1.json").open("wb") as f:
            f.write(first)
            f.write(SAMPLE.read_bytes())
        proc = subprocess.run(
            [sys.executable, "-c", script, str(data), str(tmp_path / f"{case}.db")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        peak_kib, report = proc.stdout.split("\n", 1)
        peaks[case] = int(peak_kib)
        assert "imported 10" in report, report
    assert peaks["huge"] - peaks["small"] < 2 * MAX_LINE_BYTES // 1024 + 4096, peaks
    assert "line longer than 1 MiB (line 1)" in report


def test_a_symlink_swapped_in_after_the_listing_is_refused(tmp_path: Path, registry: Registry) -> None:
    """The race for real: while the first log is being imported (its progress callback), the feedback
    CSV, listed as a regular file, is replaced by a symbolic link to a file outside the directory."""
    data = tmp_path / "data"
    data.mkdir()
    line = SAMPLE.read_text().splitlines()[0]
    (data / "a-test00-spinner-engdes1.json").write_text("\n" * 10000 + line + "\n")  # ticks at 10000
    victim = data / "a-spinner-engdes1-feedback.csv"
    victim.write_text(FEEDBACK_CSV)
    secret = tmp_path / "secret.csv"
    secret.write_text("state,subject\nBored,UI\n")
    swapped = []

    def swap(_msg: str) -> None:
        if not swapped:
            victim.unlink()
            victim.symlink_to(secret)
            swapped.append(True)

    with Store(tmp_path / "a.db") as store:
        report = import_dir(store, registry, data, progress=swap)
        assert swapped
        text = report.render()
        assert "a-spinner-engdes1-feedback.csv [feedback]: imported 0" in text
        assert "skipped file: cannot read (a symbolic link, refused)" in text
        assert store.feedback_counts("a", "spinner", "engdes1") == {}


def test_open_regular_refuses_links_and_fifos_without_blocking(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_bytes(b"data")
    link = tmp_path / "l"
    link.symlink_to(target)
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with open_regular(target) as f:
        assert f.read() == b"data"
    with pytest.raises(OSError, match="a symbolic link, refused"):
        open_regular(link)
    with pytest.raises(OSError, match="not a regular file, refused"):
        open_regular(fifo)  # O_NONBLOCK: no writer, and still no hang


def test_an_oversized_csv_is_skipped_not_read_whole(tmp_path: Path, registry: Registry) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with (data / "a-spinner-engdes1-feedback.csv").open("w") as f:
        f.write("state,subject\n")
        f.write("Curious,UI\n" * ((17 << 20) // 11 + 1))
    with Store(tmp_path / "a.db") as store:
        text = import_dir(store, registry, data).render()
    assert "skipped file: cannot read (larger than 16 MiB)" in text


def test_feedback_rows_are_counted_by_the_live_rule(tmp_path: Path) -> None:
    """An operator experiment with its own subjects: a CSV row counts exactly when the same feedback
    sent live counts (before, the CSV also counted the default subjects)."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    rig = {
        "name": "rig", "nodes": ["a", "b"], "logs": {"a": "a", "b": "b"},
        "unit_positions": {"a": [1, 0], "b": [-1, 0]}, "draw_positions": {"a": [200, 0], "b": [-200, 0]},
        "feedback_subjects": ["Setup"],
    }  # fmt: skip
    (graphs / "rig.json").write_text(json.dumps(rig))
    (graphs / "rig-lab-all.csv").write_text(",a,b\na,0,1\nb,1,0\n")
    registry = Registry.load(graphs)
    subjects = ["Setup", "Workbook", "UI", "all", "rig-lab-all", "Nope"]
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(f"Curious,{s}\n" for s in subjects)
    (data / "u-rig-lab-feedback.csv").write_text("state,subject\n" + rows)
    with Store(tmp_path / "a.db") as store:
        import_dir(store, registry, data)
        counted_csv = store.feedback_counts("u", "rig", "lab")
    live = 0
    for s in subjects:
        msg = {"user": "u", "t": 1, "exp": "rig", "course": "lab", "type": "feedback",
               "payload": {"state": "Curious", "subject": s}}  # fmt: skip
        parsed = parse_message(msg, registry)
        assert parsed.event is not None
        live += parsed.event.subject is not None
    assert live == 3  # Setup, all, rig-lab-all
    assert counted_csv == {"Curious": live}
