"""plot: PNG (matplotlib) and HTML (pyvis) of a student's task graph, with a comparison beside it."""

import struct
from pathlib import Path
from typing import Tuple

import pytest

from practable_analytics.cli import main
from practable_analytics.events import Event
from practable_analytics.experiments import Registry
from practable_analytics.store import Store

pytest.importorskip("matplotlib")


def png_size(path: Path) -> Tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "a.db"
    nodes = [0, 1, 1, 2, 3, 2, 4, 5, 0]
    with Store(path) as store:
        store.add_events(
            [
                Event("analytics", "s1", "spinner", "engdes1", "spin30", t, "x", n, "{}")
                for t, n in enumerate(nodes)
            ]
        )
        store.add_events([Event("analytics", "s2", "pendulum", "engdes1", "pend00", 1, "start", 0, "{}")])
        store.add_events([Event("analytics", "s2", "spinner", "cie3", "spin31", 1, "voltage", 0, "{}")])
    return path


def test_png_single_and_compared(tmp_path: Path, db: Path) -> None:
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    assert main(["plot", "--db", str(db), "--user", "s1", "--out", str(one)]) == 0
    assert main(["plot", "--db", str(db), "--user", "s1", "--out", str(two), "--compare", "2"]) == 0
    w1, h1 = png_size(one)
    w2, h2 = png_size(two)
    assert 400 <= w1 <= 2000 and 400 <= h1 <= 2000
    assert w2 > 1.6 * w1 and abs(h2 - h1) < 0.2 * h1  # two panels side by side
    assert one.stat().st_size > 10_000  # something was drawn, not a blank canvas


def test_html_contains_every_node(tmp_path: Path, db: Path, registry: Registry) -> None:
    out = tmp_path / "g.html"
    assert (
        main(["plot", "--db", str(db), "--user", "s1", "--out", str(out), "--compare", "spinner-engdes1-all"])
        == 0
    )
    html = out.read_text()
    exp = registry.experiment("spinner")
    assert exp is not None
    for node in exp.nodes:
        assert f'"id": "{node}"' in html
        assert f'"id": "spinner-engdes1-all: {node}"' in html
    assert '"label": "2"' not in html or '"arrows": "to"' in html
    assert "<script" in html and "vis-network" in html.lower()


def test_exp_and_course_choice(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "p.png"
    assert main(["plot", "--db", str(db), "--user", "s2", "--out", str(out)]) == 2
    assert "several experiments/courses (pendulum/engdes1, spinner/cie3)" in capsys.readouterr().err
    assert main(["plot", "--db", str(db), "--user", "s2", "--exp", "pendulum", "--out", str(out)]) == 0
    assert png_size(out)[0] > 400


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["--user", "s1", "--out", "x.svg"], 2, "must end in .png or .html"),
        (["--user", "s1", "--out", "x.png", "--compare", "nope"], 2, "unknown comparison graph"),
        (["--user", "ghost", "--out", "x.png"], 1, "no events of user"),
        (["--user", "s1", "--out", "x.png", "--exp", "lathe", "--course", "c"], 2, "unknown experiment"),
    ],
)
def test_errors(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture, argv: list, code: int, needle: str
) -> None:
    argv = [a if a not in ("x.png", "x.svg") else str(tmp_path / a) for a in argv]
    assert main(["plot", "--db", str(db), *argv]) == code
    err = capsys.readouterr().err
    assert needle in err and err.startswith("practable-analytics: error:")
    assert not (tmp_path / "x.png").exists()
