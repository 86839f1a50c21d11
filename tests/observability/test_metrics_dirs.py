"""Metrics directories of workers killed outright are removed by the next worker start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from worker.observability.process import OWNER_FILE, PREFIX, sweep_orphans


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _metrics_dir(parent: Path, name: str, owner: int | None) -> Path:
    directory = parent / f"{PREFIX}{name}"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"\0" * 16)
    if owner is not None:
        (directory / OWNER_FILE).write_text(str(owner))
    return directory


def test_only_directories_whose_owner_is_gone_are_removed(tmp_path: Path) -> None:
    killed = _metrics_dir(tmp_path, "killed", _dead_pid())
    running = _metrics_dir(tmp_path, "running", os.getpid())
    unknown = _metrics_dir(tmp_path, "older-version", None)
    other = tmp_path / "someone-else"
    other.mkdir()
    (other / OWNER_FILE).write_text(str(_dead_pid()))

    assert sweep_orphans(tmp_path) == [killed]
    assert not killed.exists()
    assert running.exists() and unknown.exists() and other.exists()
