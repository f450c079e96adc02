"""CI: is the committed dvc.lock in step with the code, params and tracked reports?

`dvc status` compares every stage's dependencies and outputs with what dvc.lock recorded. Data is not in a fresh
checkout, so only what git tracks counts here: a changed code file or folder, a changed param, a changed command,
or a tracked output (a report) that differs from the lock. Any of them means the lock was not regenerated with the
change: run `dvc repro` and commit dvc.lock with the code. Exit code 1 and one line per difference when it drifted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def drift(status: dict[str, list[Any]], tracked: frozenset[str]) -> Iterator[str]:
    """The differences of `dvc status --json` that concern files git tracks (`tracked`: paths git lists)."""
    for stage, entries in status.items():
        for entry in entries:
            if entry == "changed command":
                yield f"{stage}: command changed"
            if not isinstance(entry, dict):
                continue
            for kind in ("changed deps", "changed outs"):
                for path, state in entry.get(kind, {}).items():
                    if isinstance(state, dict):  # a params file: {block: state}
                        yield from (f"{stage}: param {path}:{key} {value}" for key, value in state.items())
                    elif is_tracked(path, tracked):
                        yield f"{stage}: {path} {state}"


def is_tracked(path: str, tracked: frozenset[str]) -> bool:
    """A tracked file, or a folder holding one."""
    return path in tracked or any(name.startswith(path.rstrip("/") + "/") for name in tracked)


def main(repo: Path) -> int:
    run = {"cwd": repo, "capture_output": True, "text": True, "check": True}
    status = json.loads(subprocess.run(["dvc", "status", "--json"], **run).stdout or "{}")  # type: ignore[call-overload]
    tracked = frozenset(subprocess.run(["git", "ls-files"], **run).stdout.split())  # type: ignore[call-overload]
    differences = list(drift(status, tracked))
    for line in differences:
        print(f"dvc.lock is out of step: {line}", file=sys.stderr)  # noqa: T201
    if differences:
        print("run `dvc repro` and commit dvc.lock with the change", file=sys.stderr)  # noqa: T201
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
