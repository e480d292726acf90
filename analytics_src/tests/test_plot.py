"""plot: PNG (matplotlib) and HTML (pyvis) of a student's task graph, with a comparison beside it."""

import struct
from pathlib import Path
from typing import Tuple

import pytest

from practable_analytics.cli import main
from practable_analytics.events import Event
from practable_analytics.experiments import Registry
from practable_analytics.plot import Panel, figure, short_id
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
        assert f'"id": "expert (spinner-engdes1-all): {node}"' in html
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


def test_png_panels_named_short_id_unused_modes_and_width_legend(db: Path, registry: Registry) -> None:
    """What the PNG shows, read from the figure it is drawn from: panels "student <short id>" and
    "expert (<graph>)", the student's unused modes marked, one edge-width scale with its legend."""
    exp = registry.experiment("spinner")
    assert exp is not None
    with Store(db) as store:
        student = store.matrix("s1", "spinner", "engdes1", 6)
    student[:, 5] = student[5, :] = 0  # speed_ramp never used
    found = registry.graph("spinner-engdes1-all")
    assert found is not None
    uuid = "53a6788c-e689-48d4-9231-c2fbd23df009"
    fig = figure(
        [
            Panel(
                f"student {short_id(uuid)} (spinner, engdes1)", exp.nodes, exp.draw_positions, student, True
            ),
            Panel("expert (spinner-engdes1-all)", exp.nodes, exp.draw_positions, found[1]),
        ]
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("student 53a6788c\u2026 (spinner, engdes1)\n")
    assert titles[1].startswith("expert (spinner-engdes1-all)\n")
    texts = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert texts[0].count("not\nused") == 1 and texts[1].count("not\nused") == 0
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    top = max(student.max(), found[1].max())
    assert labels[0] == "1" and labels[-2] == str(int(top)) and labels[-1] == "mode the student never used"
    assert "edge width" in legend.get_title().get_text()
    # one scale for both panels: the thickest line of either panel is the legend's thickest
    widths = [h.get_linewidth() for h in legend.legend_handles[:-1]]
    arrows = [p.get_linewidth() for ax in fig.axes for p in ax.patches]
    assert max(arrows) == max(widths) == 7.0 and min(widths) == min(arrows) == pytest.approx(1 + 6 / top)
    assert short_id("s1") == "s1" and short_id("abcdefghij") == "abcdefghij"
