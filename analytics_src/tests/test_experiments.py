"""experiments: the shipped definitions are SPEC section 2/3, and every invalid file is named."""

import json
import math
import shutil
from pathlib import Path
from typing import Any, Dict

import pytest
from conftest import PACKAGE_GRAPHS

from practable_analytics.experiments import DATA_DIR, DefinitionError, Registry

SIN60 = math.sin(math.radians(60))


def test_spinner_nodes_logs_and_positions(registry: Registry) -> None:
    s = registry.experiment("spinner")
    assert s is not None
    assert s.nodes == (
        "voltage_step",
        "voltage_ramp",
        "position_step",
        "position_ramp",
        "speed_step",
        "speed_ramp",
    )
    assert {log: s.nodes[i] for log, i in s.log_map.items()} == {
        "voltage": "voltage_step",
        "voltage_ramp": "voltage_ramp",
        "position": "position_step",
        "position_ramp": "position_ramp",
        "speed": "speed_step",
        "speed_ramp": "speed_ramp",
    }
    want = [(0.5, SIN60), (-0.5, SIN60), (1, 0), (-1, 0), (0.5, -SIN60), (-0.5, -SIN60)]
    assert s.unit_positions.tolist() == [list(p) for p in want]  # exactly sin 60 degrees
    # drawing (SPEC section 3): exactly 200x the unit positions with y flipped, at full precision
    assert s.draw_positions.tolist() == [[200 * x, -200 * y] for x, y in want]
    assert s.draw_positions[0].tolist() == [100, -173.20508075688772]
    assert s.draw_positions[0, 1] != -173.2
    assert s.draw_positions[2].tolist() == [200, 0]


def test_pendulum_nodes_logs_and_positions(registry: Registry) -> None:
    p = registry.experiment("pendulum")
    assert p is not None
    nodes = (
        "start",
        "brake",
        "load",
        "free",
        "sampling",
        "drive_perc",
        "brake_perc",
        "measuring_tools",
        "record",
    )
    assert p.nodes == nodes
    assert {log: p.nodes[i] for log, i in p.log_map.items()} == {n: n for n in nodes}
    unit = {"start": (0, 1), "brake": (0.64, 0.77), "free": (0.98, 0.17), "load": (0.87, -0.5),
            "sampling": (0.34, -0.94), "drive_perc": (-0.34, -0.94), "brake_perc": (-0.87, -0.5),
            "measuring_tools": (-0.98, 0.17), "record": (-0.64, 0.77)}  # fmt: skip
    draw = {"start": (0, 200), "brake": (128, 154), "free": (196, 34), "load": (174, -100),
            "sampling": (68, -188), "drive_perc": (-68, -188), "brake_perc": (-174, -100),
            "measuring_tools": (-196, 34), "record": (-128, -154)}  # fmt: skip
    for i, n in enumerate(nodes):
        assert tuple(p.unit_positions[i]) == unit[n]
        assert tuple(p.draw_positions[i]) == draw[n]


def test_courses_graphs_and_centroid_keys(registry: Registry) -> None:
    s = registry.experiment("spinner")
    p = registry.experiment("pendulum")
    assert s is not None and p is not None
    assert set(s.courses) == {"engdes1", "cie3"} and set(p.courses) == {"engdes1"}
    assert dict(s.courses["engdes1"].centroid_keys) == {
        "task1core": "spinner-engdes1-1-core",
        "task1ext": "spinner-engdes1-1-ext",
        "task2": "spinner-engdes1-2",
    }
    assert dict(s.courses["cie3"].centroid_keys) == {
        "task1": "spinner-cie3-1-2",
        "task3": "spinner-cie3-3",
        "task4": "spinner-cie3-4",
    }
    cie3 = s.courses["cie3"]
    assert cie3.all_graph == "spinner-cie3-all"
    assert sorted(cie3.graphs) == sorted(p.stem for p in PACKAGE_GRAPHS.glob("spinner-cie3-*.csv"))
    # the mixed int/float file without a trailing newline
    mean = cie3.graphs["spinner-cie3-mean-21-22"]
    assert mean[0, 0] == 795 and mean[2, 2] == 107 and mean[3, 3] == 10 and mean[4, 4] == 3
    assert mean.sum() == 795 + 1 + 107 + 1 + 1 + 10 + 3
    found = registry.graph("pendulum-engdes1-all")
    assert found is not None and found[0] is p and found[1][0, 8] == 5
    assert registry.graph("nope") is None and registry.experiment("nope") is None


def test_graph_values_are_read_only(registry: Registry) -> None:
    found = registry.graph("spinner-engdes1-all")
    assert found is not None
    with pytest.raises(ValueError):
        found[1][0, 0] = 1


def test_resolve_graph_by_full_name_or_task(registry: Registry) -> None:
    s = registry.experiment("spinner")
    assert s is not None
    assert s.resolve_graph("engdes1", "all") == "spinner-engdes1-all"
    assert s.resolve_graph("engdes1", "spinner-cie3-3") == "spinner-cie3-3"
    assert s.resolve_graph("engdes1", "3") is None
    assert s.resolve_graph("nocourse", "all") is None
    assert s.resolve_graph("engdes1", "pendulum-engdes1-all") is None


# -- the operator directory -------------------------------------------------------------------


def spinner_doc() -> Dict[str, Any]:
    return json.loads((DATA_DIR / "experiments" / "spinner.json").read_text())


def write(path: Path, doc: Any) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_operator_dir_adds_experiment_course_and_reorders_columns(tmp_path: Path) -> None:
    doc = {
        "name": "rig",
        "nodes": ["a", "b", "c"],
        "logs": {"A": "a", "b": "b", "c": "c"},
        "unit_positions": {"a": [1, 0], "b": [0, 1], "c": [-1, 0]},
        "draw_positions": {"a": [200, 0], "b": [0, -200], "c": [-200, 0]},
    }
    write(tmp_path / "rig.json", doc)
    # columns and rows in another order than the nodes: must be reordered to a, b, c
    write(tmp_path / "rig-lab1-all.csv", ",c,a,b\nb,0,2,0\nc,1,0,0\na,0,0,3\n")
    write(tmp_path / "rig-lab1-x.csv", ",a,b,c\na,1,0,0\nb,0,0,0\nc,0,0,0\n")
    write(tmp_path / "spinner-everyone-all.csv", (PACKAGE_GRAPHS / "spinner-engdes1-all.csv").read_text())
    reg = Registry.load(tmp_path)
    rig = reg.experiment("rig")
    assert rig is not None and rig.feedback_subjects == ()
    course = rig.courses["lab1"]
    assert course.graphs["rig-lab1-all"].tolist() == [[0, 3, 0], [2, 0, 0], [0, 0, 1]]
    assert course.all_graph == "rig-lab1-all"
    assert dict(course.centroid_keys) == {"x": "rig-lab1-x"}  # undeclared course: keys are the tasks
    spinner = reg.experiment("spinner")
    assert spinner is not None and "everyone" in spinner.courses and "engdes1" in spinner.courses


def test_operator_graph_replaces_a_shipped_one(tmp_path: Path) -> None:
    text = (PACKAGE_GRAPHS / "spinner-engdes1-2.csv").read_text().replace("29.0", "31.0")
    write(tmp_path / "spinner-engdes1-2.csv", text)
    found = Registry.load(tmp_path).graph("spinner-engdes1-2")
    assert found is not None and found[1][4, 4] == 31


def bad_json_cases() -> Dict[str, Any]:
    cases: Dict[str, Any] = {"invalid JSON": "{", "must be a JSON object": "[]"}
    d = spinner_doc()
    del d["nodes"]
    cases["missing key(s): nodes"] = d
    d = spinner_doc()
    d["logs"]["speed"] = "warp"
    cases["names unknown node 'warp'"] = d
    d = spinner_doc()
    d["name"] = "spinner2"
    cases["differs from the file name"] = d
    d = spinner_doc()
    del d["unit_positions"]["speed_ramp"]
    cases["'unit_positions' must be an object"] = d
    d = spinner_doc()
    del d["draw_scale"]
    d["draw_positions"] = {n: [0, 0] for n in d["nodes"]}
    d["draw_positions"]["speed_ramp"] = [1, "x"]
    cases["'draw_positions.speed_ramp' must be [x, y]"] = d
    d = spinner_doc()
    d["draw_positions"] = {n: [0, 0] for n in d["nodes"]}  # as well as draw_scale
    cases["give 'draw_positions' or 'draw_scale', not both"] = d
    d = spinner_doc()
    del d["draw_scale"]
    cases["missing key(s): draw_positions (or draw_scale)"] = d
    d = spinner_doc()
    d["draw_scale"] = [200, 0]
    cases["'draw_scale' must be [sx, sy] with finite non-zero numbers"] = d
    d = spinner_doc()
    d["draw_scale"] = [2e6, 1]
    cases["'draw_scale' puts a drawing position beyond 1e+06"] = d
    d = spinner_doc()
    d["nodes"] = ["a", "a"]
    cases["'nodes' has duplicates"] = d
    d = spinner_doc()
    d["extra"] = 1
    cases["unknown key(s): extra"] = d
    d = spinner_doc()
    d["courses"]["cie3"]["centroid_keys"]["all"] = "3"
    cases["centroid_keys.all' is invalid"] = d
    d = spinner_doc()
    d["courses"]["engdes1"]["centroid_keys"]["task9"] = "9"
    cases["names missing graph spinner-engdes1-9"] = d
    return cases


@pytest.mark.parametrize("problem", sorted(bad_json_cases()))
def test_invalid_experiment_file_is_named_with_its_problem(tmp_path: Path, problem: str) -> None:
    write(tmp_path / "spinner.json", bad_json_cases()[problem])
    with pytest.raises(DefinitionError) as info:
        Registry.load(tmp_path)
    assert str(info.value).startswith("spinner.json: ")
    assert problem in str(info.value)


GOOD = (PACKAGE_GRAPHS / "spinner-engdes1-all.csv").read_text()
BAD_CSV = {
    "header row names": GOOD.replace(",voltage_step,", ",volts,", 1),
    "first column names": GOOD.replace("\nspeed_ramp,", "\nspeed_step,"),
    "must be finite, >= 0 and <= 1e+06": GOOD.replace("19.0", "-1.0"),
    "'1e308' must be finite": GOOD.replace("19.0", "1e308"),
    "'nan' must be finite": GOOD.replace("19.0", "nan"),
    "'x' is not a number": GOOD.replace("19.0", "x"),
    "has 5 values, expected 6": GOOD.replace(",29.0,0.0", ",29.0"),
    "empty file": "",
}


@pytest.mark.parametrize("problem", sorted(BAD_CSV))
def test_invalid_graph_file_is_named_with_its_problem(tmp_path: Path, problem: str) -> None:
    write(tmp_path / "spinner-engdes1-all.csv", BAD_CSV[problem])
    with pytest.raises(DefinitionError) as info:
        Registry.load(tmp_path)
    assert str(info.value).startswith("spinner-engdes1-all.csv: ")
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("lathe-x-all.csv", "no experiment for graph name"),
        ("spinner-all.csv", "is not <exp>-<course>-<task>"),
    ],
)
def test_graph_file_name_must_name_experiment_course_and_task(
    tmp_path: Path, name: str, problem: str
) -> None:
    write(tmp_path / name, GOOD)
    with pytest.raises(DefinitionError, match=f"^{name}: .*{problem}"):
        Registry.load(tmp_path)


def test_missing_operator_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="not a directory"):
        Registry.load(tmp_path / "absent")


def test_shipped_data_loads_from_a_copy(tmp_path: Path) -> None:
    # the operator dir may hold a full copy of the package data: same result
    for p in (DATA_DIR / "experiments").glob("*.json"):
        shutil.copy(p, tmp_path)
    for p in PACKAGE_GRAPHS.glob("*.csv"):
        shutil.copy(p, tmp_path)
    reg = Registry.load(tmp_path)
    assert reg.experiments() == ["pendulum", "spinner"]
