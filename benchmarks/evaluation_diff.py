"""Where two `evaluate` outputs differ: every value of evaluation.json and metrics.json (by its path in the JSON) and
every plot table (plots/*.csv, byte for byte), of two folders `stages.py --keep` left (or any two runs' outputs).

    .venv/bin/python benchmarks/evaluation_diff.py /tmp/keep/baseline-evaluate-0 /tmp/keep/new-evaluate-0 \
        --allow observable_oracle

Exits non-zero when a value differs whose path does not contain one of the `--allow` words (the figures a change
moved on purpose); prints every difference either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """The paths ("a/b/c") at which two JSON values differ, a missing key included."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            found
            for key in sorted(set(old) | set(new), key=str)
            for found in (
                differences(old[key], new[key], f"{path}/{key}")
                if key in old and key in new
                else [f"{path}/{key} (only in {'old' if key in old else 'new'})"]
            )
        ]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            found for i, (a, b) in enumerate(zip(old, new, strict=True)) for found in differences(a, b, f"{path}/{i}")
        ]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--allow", nargs="*", default=[], help="words in the paths of differences that are expected")
    args = parser.parse_args()
    found: list[str] = []
    for name in ("evaluation.json", "metrics.json"):
        old, new = (json.loads((folder / name).read_text()) for folder in (args.old, args.new))
        found += [f"{name}{difference}" for difference in differences(old, new)]
    tables = sorted({path.name for folder in (args.old, args.new) for path in (folder / "plots").glob("*.csv")})
    for table in tables:
        old_path, new_path = args.old / "plots" / table, args.new / "plots" / table
        if not (old_path.is_file() and new_path.is_file()) or old_path.read_bytes() != new_path.read_bytes():
            found.append(f"plots/{table}: differs")
    unexpected = [line for line in found if not any(word in line.split(":")[0] for word in args.allow)]
    for line in found:
        print(("  expected " if line not in unexpected else "UNEXPECTED ") + line)
    print(f"{len(found)} differences, {len(unexpected)} unexpected; plot tables compared: {len(tables)}")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
