"""Storage failures in any command end in one line and exit 1 (caught in commands/common.py only)."""

import argparse
import sqlite3
from pathlib import Path
from typing import List

import pytest
from conftest import SAMPLE_LOGS

from practable_analytics.cli import main
from practable_analytics.commands import common
from practable_analytics.store import Store, StoreError

COMMANDS = {
    "forget": ["--user", "test"],
    "report": ["--user", "test"],
    "plot": ["--user", "test", "--out", "OUT.png"],
    "export": ["--format", "csv", "--out", "OUT"],
    "replay": [str(SAMPLE_LOGS / "test-test00-spinner-engdes1.json")],
    "import-legacy": [str(SAMPLE_LOGS)],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_broken_database_is_one_line_and_exit_1(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture
) -> None:
    db = tmp_path / "a.db"
    with Store(db):
        pass
    conn = sqlite3.connect(db)  # a real database that fails under the Store: its tables are gone
    for table in ("events", "transitions", "feedback"):
        conn.execute(f"DROP TABLE {table}")
    conn.commit()
    conn.close()
    argv: List[str] = [a.replace("OUT", str(tmp_path / "out")) for a in COMMANDS[command]]
    assert main([command, "--db", str(db), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("practable-analytics: error: ") and err.count("\n") == 1, err
    assert "database error: " in err and "no such table" in err, err


def test_store_error_raised_by_a_command_becomes_one_line(capsys: pytest.CaptureFixture) -> None:
    def command(_args: object) -> int:
        raise StoreError("disk I/O error")

    args = argparse.Namespace(func=command)
    with pytest.raises(common.CommandError, match=r"^database error: disk I/O error$") as info:
        common.run_command(args)
    assert info.value.code == 1


def test_no_command_module_catches_sqlite_errors_itself() -> None:
    here = Path(common.__file__).parent
    # status is the metrics helper's; common is the one place
    offenders = [
        p.name
        for p in here.glob("*.py")
        if p.name not in ("common.py", "status.py") and "sqlite3.Error" in p.read_text()
    ]
    assert offenders == []
