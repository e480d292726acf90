"""check: one rule for operator data. ``practable-analytics check`` lists every problem that
``Registry.load`` stops at, and load refuses the same files (a cell of 1e308 included)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PACKAGE_GRAPHS

from practable_analytics.cli import main
from practable_analytics.experiments import DATA_DIR, DefinitionError, Registry, check

GOOD = (PACKAGE_GRAPHS / "spinner-engdes1-all.csv").read_text()


def rig_doc() -> dict:
    return {
        "name": "rig",
        "nodes": ["a", "b"],
        "logs": {"a": "a", "b": "b"},
        "unit_positions": {"a": [1, 0], "b": [-1, 0]},
        "draw_positions": {"a": [200, 0], "b": [-200, 0]},
    }


def test_valid_directory_exits_0_and_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for p in (DATA_DIR / "experiments").glob("*.json"):
        shutil.copy(p, tmp_path)
    for p in PACKAGE_GRAPHS.glob("*.csv"):
        shutil.copy(p, tmp_path)
    (tmp_path / "rig.json").write_text(json.dumps(rig_doc()))
    (tmp_path / "rig-lab-all.csv").write_text(",a,b\na,0,1e6\nb,2,0\n")
    (tmp_path / "notes.txt").write_text("ignored, as load ignores it")
    assert main(["check", "--graphs", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""
    assert main(["check"]) == 0  # the package data alone


def test_every_problem_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "spinner-engdes1-all.csv").write_text(GOOD.replace("19.0", "1e308", 1))
    (tmp_path / "spinner-engdes1-2.csv").write_text(GOOD.replace("19.0", "1000000.5", 1))
    (tmp_path / "spinner-engdes1-3.csv").write_text(GOOD.replace(",29.0,0.0", ",29.0"))  # not square
    (tmp_path / "spinner-cie3-9.csv").write_text(GOOD.replace(",voltage_step,", ",volts,", 1))
    (tmp_path / "lathe-x-all.csv").write_text(GOOD)  # no such experiment
    (tmp_path / "spinner-all.csv").write_text(GOOD)  # no task
    bad = rig_doc()
    bad["draw_positions"]["a"] = [1e300, 0]
    (tmp_path / "rig.json").write_text(json.dumps(bad))
    (tmp_path / "rig-lab-all.csv").write_text(",a,b\na,0,1\nb,2,0\n")
    odd = rig_doc()
    odd["name"] = "odd"
    odd["colour"] = "red"
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    (tmp_path / "bad\x1b[2Jname.json").write_text("{")
    assert main(["check", "--graphs", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    by_file = dict(line.split(": ", 1) for line in lines)
    assert len(by_file) == len(lines) == 10, "\n".join(lines)
    assert "must be finite, >= 0 and <= 1e+06" in by_file["spinner-engdes1-all.csv"]
    assert "'1e308'" in by_file["spinner-engdes1-all.csv"]
    assert "'1000000.5'" in by_file["spinner-engdes1-2.csv"]
    assert "has 5 values, expected 6" in by_file["spinner-engdes1-3.csv"]
    assert "header row names" in by_file["spinner-cie3-9.csv"]
    assert "no experiment for graph name" in by_file["lathe-x-all.csv"]
    assert "is not <exp>-<course>-<task>" in by_file["spinner-all.csv"]
    assert "'draw_positions.a' must be [x, y] with finite numbers" in by_file["rig.json"]
    assert by_file["rig-lab-all.csv"] == "not checked: its experiment file rig.json is invalid"
    assert "unknown key(s): colour" in by_file["odd.json"]
    assert "invalid JSON" in by_file["bad\\x1b[2Jname.json"]  # escaped: one harmless line


def test_load_refuses_what_check_reports_naming_the_first_file(tmp_path: Path) -> None:
    (tmp_path / "spinner-engdes1-all.csv").write_text(GOOD.replace("19.0", "1e308", 1))
    assert check(tmp_path) == [
        "spinner-engdes1-all.csv: row 4: '1e308' must be finite, >= 0 and <= 1e+06",
    ]
    with pytest.raises(DefinitionError, match=r"^spinner-engdes1-all.csv: row 4: '1e308'"):
        Registry.load(tmp_path)
    (tmp_path / "spinner-engdes1-all.csv").write_text(GOOD.replace("19.0", "1e6", 1))
    assert check(tmp_path) == []
    found = Registry.load(tmp_path).graph("spinner-engdes1-all")
    assert found is not None and found[1].max() == 1e6


def test_a_missing_centroid_graph_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    doc = json.loads((DATA_DIR / "experiments" / "spinner.json").read_text())
    doc["courses"]["engdes1"]["centroid_keys"]["task9"] = "9"
    (tmp_path / "spinner.json").write_text(json.dumps(doc))
    (tmp_path / "spinner-engdes1-2.csv").write_text("")
    assert sorted(check(tmp_path)) == [
        "spinner-engdes1-2.csv: empty file",
        "spinner.json: centroid key 'task9' of course 'engdes1' names missing graph spinner-engdes1-9",
    ]


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--graphs", str(tmp_path / "absent")]) == 2
    assert "absent: not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["check", "--bogus"])
    assert info.value.code == 2


def test_the_installed_command_uses_the_environment_default(tmp_path: Path) -> None:
    (tmp_path / "spinner-engdes1-all.csv").write_text(GOOD.replace("19.0", "inf", 1))
    env = {"PRACTABLE_ANALYTICS_GRAPHS": str(tmp_path), "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "practable_analytics.cli", "check"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "spinner-engdes1-all.csv: row 4: 'inf' must be finite, >= 0 and <= 1e+06\n"
