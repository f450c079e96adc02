"""Stage `generate`: write the synthetic shop's tables (the default source) and its ground truth."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from pipelines.params import block, load_params
from pipelines.sources.synthetic import SyntheticShop, SyntheticShopParams, generate_shop

log = logging.getLogger(__name__)

TRUTH_CUSTOMERS = "customers.parquet"
TRUTH_DIRT = "dirt.parquet"
TRUTH_PARAMS = "params.json"


def run(params_path: Path, out_dir: Path, truth_dir: Path) -> SyntheticShop:
    params = SyntheticShopParams.from_dict(block(load_params(params_path), "generate"))
    log.info("generating a shop of %d customers (seed %d)", params.n_customers, params.seed)
    shop = generate_shop(params)
    write_shop(shop, params, out_dir, truth_dir)
    return shop


def write_shop(shop: SyntheticShop, params: SyntheticShopParams, out_dir: Path, truth_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name, table in shop.tables.items():
        table.to_parquet(out_dir / f"{name}.parquet", index=False)
    shop.customer_truth.to_parquet(truth_dir / TRUTH_CUSTOMERS, index=False)
    shop.dirt.to_parquet(truth_dir / TRUTH_DIRT, index=False)
    (truth_dir / TRUTH_PARAMS).write_text(json.dumps(asdict(params), indent=2, sort_keys=True) + "\n")
