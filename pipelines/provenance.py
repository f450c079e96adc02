"""Where a run came from: the git commit of the code and DVC's hash of the data it read."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from pathlib import Path

import yaml

UNKNOWN = "unknown"
# Tracked files DVC writes during `dvc repro` / `dvc exp run` (git pathspecs that exclude them).
DVC_WRITES = (":(exclude)dvc.lock", ":(exclude)reports")
# Set by `dvc exp run` for the stages it runs.
DVC_EXPERIMENT_VARIABLE = "DVC_EXP_NAME"


def dvc_experiment() -> str | None:
    """The name of the DVC experiment running this stage, if any."""
    return os.environ.get(DVC_EXPERIMENT_VARIABLE) or None


def run_name(stage: str, now: datetime) -> str:
    """A name a person can find a run by: the DVC experiment's, else the stage and the time (UTC)."""
    return dvc_experiment() or f"{stage} {now:%Y-%m-%d %H:%M}"


def git_commit(repo: Path) -> str:
    """HEAD's commit, with "-dirty" when tracked code or params have uncommitted changes. dvc.lock and the tracked
    reports are left out: DVC itself rewrites them while a pipeline runs, before the stage that asks."""
    try:
        commit = _git(repo, "rev-parse", "HEAD")
        dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no", "--", ".", *DVC_WRITES))
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
