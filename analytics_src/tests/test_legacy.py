"""import-legacy: real legacy logs, adjacency and feedback CSVs into a real SQLite file."""

import json
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from conftest import COMPARISON_LOGS, SAMPLE_LOGS

from practable_analytics.cli import main
from practable_analytics.experiments import Registry
from practable_analytics.legacy import import_dir, split_csv_name, split_log_name
from practable_analytics.store import Store
from practable_analytics.taskgraph import adjacency as dfg

UUID = "53a6788c-e689-48d4-9231-c2fbd23df009"
COPY = "35a6788c-e689-48d4-9231-c2fbd23df009"


def by_file(report_text: str) -> Dict[str, List[str]]:
    """Report lines grouped under the file they describe."""
    out: Dict[str, List[str]] = {}
    current = ""
    for line in report_text.splitlines():
        if not line.startswith("  ") and " [" in line:
            current = line.split(" [", 1)[0]
            out[current] = [line]
        elif current:
            out[current].append(line)
    return out


def expected_matrix(registry: Registry, files: List[Path], user: str) -> np.ndarray:
    """From-scratch matrix of one user's analytics lines across files (sorted by t, file order on ties)."""
    exp = registry.experiment("spinner")
    assert exp is not None
    items = []
    for k, path in enumerate(files):
        for i, line in enumerate(path.read_text().splitlines()):
            if not line.strip():
                continue
            m = json.loads(line)
            if m.get("user") == user and m["payload"]["log"] in exp.log_map:
                items.append((m["t"], k, i, exp.log_map[m["payload"]["log"]]))
    return dfg([node for *_, node in sorted(items)], len(exp.nodes))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(SAMPLE_LOGS, d)
    for p in d.iterdir():
        p.chmod(0o644)
    return d


def test_name_splitting_from_the_right(registry: Registry) -> None:
    assert split_log_name(f"{UUID}-spin30-spinner-engdes1", registry) == (
        UUID,
        "spin30",
        "spinner",
        "engdes1",
    )
    assert split_log_name("spinner-engdes1-1-core", registry) is None  # "1" is no experiment
    assert split_log_name("spin30-spinner-engdes1", registry) is None
    assert split_csv_name(f"{UUID}-pendulum-engdes1-adjacency", "adjacency", registry) == (
        UUID,
        "pendulum",
        "engdes1",
    )
    assert split_csv_name(f"{UUID}-pendulum-engdes1-adjacency", "feedback", registry) is None


def test_sample_logs_import_then_second_run_imports_nothing(
    tmp_path: Path, data_dir: Path, registry: Registry
) -> None:
    shutil.copy(COMPARISON_LOGS / "spinner-engdes1-2.json", data_dir)
    (data_dir / "notes.txt").write_text("hello")
    with Store(tmp_path / "a.db") as store:
        report = import_dir(store, registry, data_dir)
        text = report.render()
        files = by_file(text)
        # every sample line once: the two misnamed copies are duplicates of the correctly named files
        assert report.imported == 51
        assert store.count_events() == 51
        assert "imported 10" in files[f"{UUID}-spin30-spinner-engdes1.json"][0]
        copy_lines = "\n".join(files[f"{COPY}-spin30-spinner-engdes1.json"])
        assert "imported 0, duplicates of other files 10" in copy_lines
        assert f"name user '{UUID}', not '{COPY}'" in copy_lines
        # earliest UI: no type/exp/course, line's own user kept
        test2 = "\n".join(files["test2-test01-spinner-engdes1.json"])
        assert "type (analytics, earliest UI) on 10 lines" in test2 and "'expert'" in test2
        assert "comparison graph spinner-engdes1-2" in "\n".join(files["spinner-engdes1-2.json"])
        assert "name is not" in "\n".join(files["notes.txt"])
        # the counts equal a from-scratch DFG over both devices' files
        uuid_files = sorted(data_dir.glob(f"{UUID}-*.json"))
        want = expected_matrix(registry, uuid_files, UUID)
        assert want.sum() == 19
        assert np.array_equal(store.matrix(UUID, "spinner", "engdes1", 6), want)
        want_expert = expected_matrix(registry, [data_dir / "test2-test01-spinner-engdes1.json"], "expert")
        assert np.array_equal(store.matrix("expert", "spinner", "engdes1", 6), want_expert)
        streams = {r[2] for chunk in store.iter_events(user=UUID) for r in chunk}
        assert streams == {"spin30", "spin31"}
        # second run: nothing new
        again = import_dir(store, registry, data_dir)
        assert again.imported == 0
        assert "nothing new to import" in again.render()
        assert store.count_events() == 51
        assert np.array_equal(store.matrix(UUID, "spinner", "engdes1", 6), want)


def test_appended_and_bad_lines(tmp_path: Path, data_dir: Path, registry: Registry) -> None:
    log = data_dir / "test-test00-spinner-engdes1.json"
    with Store(tmp_path / "a.db") as store:
        import_dir(store, registry, data_dir)
        before = store.count_events()
        late = {"user": "test", "t": 1673351988500, "exp": "spinner", "hardware": "test00",
                "course": "engdes1", "type": "analytics", "payload": {"log": "speed"}}  # fmt: skip
        with log.open("ab") as f:
            f.write(b"\n{not json\n")
            f.write(b"\xff\xfe broken bytes\n")
            f.write(json.dumps({"type": "response", "user": "test"}).encode() + b"\n")
            f.write(
                json.dumps(
                    {"user": "test", "t": "soon", "type": "analytics", "payload": {"log": "x"}}
                ).encode()
            )
            f.write(b"\n[1, 2]\n")
            f.write(b'{"user": "test", "pad": "' + b"x" * (1 << 21) + b'"}\n')
            f.write(json.dumps(late).encode() + b"\n")
        report = import_dir(store, registry, data_dir)
        lines = "\n".join(by_file(report.render())[log.name])
        assert report.imported == 1
        assert store.count_events() == before + 1
        for reason in (
            "not JSON",
            "not UTF-8",
            "'response' (not stored)",
            "fails validation",
            "not a JSON object",
            "line longer than 1 MiB",
        ):
            assert reason in lines, reason
        assert "already imported 10" in lines
        assert store.chain("test", "spinner", "engdes1")[-1] == 4  # speed -> speed_step


def test_adjacency_and_feedback_csv(tmp_path: Path, data_dir: Path, registry: Registry) -> None:
    exp = registry.experiment("spinner")
    assert exp is not None
    nodes = exp.nodes
    with Store(tmp_path / "a.db") as store:
        import_dir(store, registry, data_dir)
        events_matrix = store.matrix("test", "spinner", "engdes1", 6)

        def write_csv(name: str, m: np.ndarray) -> None:
            rows = [",".join(["", *nodes])]
            rows += [",".join([n, *[f"{v:.1f}" for v in m[i]]]) for i, n in enumerate(nodes)]
            (data_dir / name).write_text("\n".join(rows) + "\n")

        write_csv("test-spinner-engdes1-adjacency.csv", events_matrix)
        other = np.zeros((6, 6))
        other[0, 1] = 3
        write_csv(f"{UUID}-spinner-engdes1-adjacency.csv", other)
        write_csv("ghost-spinner-engdes1-adjacency.csv", other)
        (data_dir / "bad-spinner-engdes1-adjacency.csv").write_text(",a,b\na,1,2\n")
        # feedback: a pandas-style index column, one row also present in the logs, one invalid state
        fb_msg = {"user": "test", "t": 1673351988600, "exp": "spinner", "course": "engdes1",
                  "type": "feedback", "payload": {"state": "Curious", "subject": "UI"}}  # fmt: skip
        with (data_dir / "test-test00-spinner-engdes1.json").open("a") as f:
            f.write(json.dumps(fb_msg) + "\n")
        (data_dir / "test-spinner-engdes1-feedback.csv").write_text(
            ",State,Subject,t\n0,Curious,UI,1673351988600\n1,Engaged,Hardware,1673351988700\n"
            "2,Sleepy,UI,1673351988800\n3,Bored,spinner-engdes1-2,\n"
        )
        (data_dir / "x-spinner-engdes1-feedback.csv").write_text("mood,when\nhappy,1\n")
        report = import_dir(store, registry, data_dir)
        files = by_file(report.render())
        assert "equals the matrix recomputed" in "\n".join(files["test-spinner-engdes1-adjacency.csv"])
        uuid_adj = "\n".join(files[f"{UUID}-spinner-engdes1-adjacency.csv"])
        assert "differs from the matrix recomputed from the stored events" in uuid_adj
        assert "no events of this student" in "\n".join(files["ghost-spinner-engdes1-adjacency.csv"])
        assert "skipped file: bad-spinner-engdes1-adjacency.csv" in "\n".join(
            files["bad-spinner-engdes1-adjacency.csv"]
        )
        fb = "\n".join(files["test-spinner-engdes1-feedback.csv"])
        assert "imported 3" in fb and "1 rows equal feedback already stored" in fb
        assert "1 rows with a state or subject outside the lists" in fb and "columns ignored: ''" in fb
        assert "no state column" in "\n".join(files["x-spinner-engdes1-feedback.csv"])
        # counts: Curious from the log (not twice), Engaged and Bored from the CSV, Sleepy not counted
        assert store.feedback_counts("test", "spinner", "engdes1") == {"Bored": 1, "Curious": 1, "Engaged": 1}
        baseline = [r for chunk in store.iter_legacy_adjacency() for r in chunk]
        assert {r[0] for r in baseline} == {"test", UUID, "ghost"}
        # the baseline never changes the answers
        assert store.matrix("ghost", "spinner", "engdes1", 6).sum() == 0
        again = import_dir(store, registry, data_dir)
        assert again.imported == 0
        assert store.feedback_counts("test", "spinner", "engdes1") == {"Bored": 1, "Curious": 1, "Engaged": 1}


def test_cli(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "cli.db"
    assert main(["import-legacy", "--db", str(db), str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "total: 8 files, imported 51" in out
    assert main(["import-legacy", "--db", str(db), str(data_dir)]) == 0
    assert "nothing new to import" in capsys.readouterr().out
    assert main(["import-legacy", "--db", str(db), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("practable-analytics: error:") and err.count("\n") == 1
