"""docs/reproduce_results.sh: every command it would run is one the command line accepts."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from lowlatseg.cli import build_parser

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "reproduce_results.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _dry_run(*groups: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRY_RUN": "1", **settings}
    return subprocess.run(["bash", str(SCRIPT), *groups], env=env, capture_output=True, text=True, timeout=60)


def _commands(stderr: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in stderr.splitlines() if line.startswith("+ ")]


@pytest.mark.parametrize("settings", [{}, {"WEIGHTS": "w.pt", "PROPAGATION": "p.pt", "SCHEDULER": "s.pt",
                                          "DEV_WEIGHTS": "d.pt", "TAG": "_new", "OUT": "out"}])
def test_every_command_parses(settings: dict[str, str]) -> None:
    done = _dry_run(**settings)
    assert done.returncode == 0, done.stderr
    commands = _commands(done.stderr)
    cli = [c for c in commands if c[0] == "lowlatseg"]
    assert len(cli) >= 15
    parser = build_parser()
    for command in cli:
        parser.parse_args(command[1:])  # SystemExit (status 2) on a flag the CLI does not know
        if "--json" in command:
            assert command[command.index("--json") + 1].startswith(settings.get("OUT", "docs/results") + "/")
    scripts = [c for c in commands if c[0] == "python" and c[1] != "-"]
    for command in scripts:
        assert (SCRIPT.parents[1] / command[1]).is_file(), command
    if settings:
        assert all("--weights" in c for c in cli), "every command scores the network it was given"
        assert any("--drive" in c for c in cli), "DEV_WEIGHTS adds the held-out-drive row"
        assert all(c[c.index("--json") + 1].endswith("_new.json") for c in cli if "--json" in c)


def test_groups_select_commands() -> None:
    timing = _commands(_dry_run("timing").stderr)
    assert timing and all("eval image" not in " ".join(c) for c in timing)
    assert any(c[:2] == ["lowlatseg", "bench"] for c in timing)
    accuracy = _commands(_dry_run("accuracy").stderr)
    assert not any("--drive" in c for c in accuracy), "no held-out-drive row without DEV_WEIGHTS"


def test_unknown_group_is_one_sentence_and_status_2() -> None:
    done = _dry_run("timings")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["unknown group 'timings': choose from accuracy, scheduling, timing, segment"]
