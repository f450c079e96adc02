"""Where a run came from: the git commit of the code and DVC's hash of the data it read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

UNKNOWN = "unknown"


def git_commit(repo: Path) -> str:
    """HEAD's commit, with "-dirty" when tracked files have uncommitted changes."""
    try:
        commit = _git(repo, "rev-parse", "HEAD")
        dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return UNKNOWN
    return f"{commit}-dirty" if dirty else commit


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def dvc_output_hash(lock_file: Path, output: str) -> str:
    """The md5 DVC recorded in dvc.lock for a stage output path (e.g. "data/features"), or "unknown"."""
    if not lock_file.is_file():
        return UNKNOWN
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out.get("path") == output:
                return str(out.get("md5", UNKNOWN))
    return UNKNOWN
