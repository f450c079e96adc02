"""The observable oracle's history (`observed_history`) of two checkouts on one shop: its time and whether every
History field is the same. Each checkout runs in its own process (this interpreter, the checkout first on sys.path),
one after the other, on the test customers of the shop's backtest model.

    nice -n 5 .venv/bin/python benchmarks/oracle_history.py --shop /tmp/s9-1m --old /work/wt-base-s10 --new . \\
        --out benchmarks/results/oracle_history_1m_s10.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# Run in the child: the checkout's own oracle on the shop (a folder prepare.py made, or a repository after dvc repro).
CHILD = """
import json, pickle, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import pandas as pd
import pyarrow.parquet as pq
import pipelines.sources.synthetic_oracle as oracle
from models.artifact import load_model
from pipelines.sources.synthetic import SyntheticShopParams
from pipelines.stages.evaluate import read_tables
shop = Path(sys.argv[2])
data = shop if (shop / "features.parquet").is_file() else shop / "data"
models = data if (data / "backtest").is_dir() else data / "models"
features = data / "features.parquet" if (data / "features.parquet").is_file() else data / "features/features.parquet"
cutoff = pd.Timestamp(load_model(models / "backtest").training["deploy_at"])
rows = pq.read_table(features, filters=[("cutoff", "=", cutoff.to_pydatetime())]).to_pandas()
label = next(name for name in rows.columns if name.startswith("churned"))
customers = pd.Index(rows.loc[rows[label].notna(), "customer_id"].sort_values())
params = SyntheticShopParams.from_dict(json.loads((data / "truth/params.json").read_text()))
tables = read_tables(data / "validated", oracle.COLUMNS_READ)
started = time.perf_counter()
history = oracle.observed_history(tables, customers, cutoff, params)
seconds = time.perf_counter() - started
pickle.dump({"seconds": seconds, "history": history.__dict__}, open(sys.argv[3], "wb"))
"""


def history_of(code: Path, shop: Path, out: Path) -> dict:
    subprocess.run([sys.executable, "-c", CHILD, str(code.resolve()), str(shop), str(out)], check=True)
    with out.open("rb") as file:
        return pickle.load(file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shop", type=Path, required=True)
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="a JSON file for the result")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        load = os.getloadavg()[0]
        old = history_of(args.old, args.shop, Path(folder) / "old.pickle")
        new = history_of(args.new, args.shop, Path(folder) / "new.pickle")
    same = {
        name: bool(
            np.array_equal(
                np.asarray(value), np.asarray(new["history"][name]), equal_nan=np.asarray(value).dtype.kind == "f"
            )
        )
        for name, value in old["history"].items()
    }
    result = {
        "shop": str(args.shop),
        "load_1min_before": round(load, 2),
        "seconds": {"old": round(old["seconds"], 2), "new": round(new["seconds"], 2)},
        "fields_equal": same,
    }
    print(json.dumps(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0 if all(same.values()) else 1)


if __name__ == "__main__":
    main()
