"""Reads a local patchtrail store with DuckDB and pyarrow, independently of patchtrail.

usage: read_store.py STORE FORMAT   (FORMAT: parquet | jsonl | seed)
Prints JSON: each reader's row count and column types, and the patch rows DuckDB read.
"""
import json
import os
import sys

import duckdb
import pyarrow.dataset as ds


def main():
    store, fmt = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    out = {}
    if fmt == "seed":
        rel = (
            f"SELECT instanceid AS instance_id, year, month, day, unnest(Patches, recursive := true) "
            f"FROM read_json('{store}/year=*/month=*/day=*/instanceid=*/*', hive_partitioning = true, "
            f"format = 'auto', columns = {{'Patches': 'STRUCT(Classification VARCHAR, CveIds VARCHAR, InstalledTime TIMESTAMP, KbId VARCHAR, Severity VARCHAR, State VARCHAR, Title VARCHAR)[]'}})"
        )
        rows = con.execute(
            f"SELECT instance_id, KbId, State, CASE WHEN epoch(InstalledTime) > 0 THEN epoch(InstalledTime)::BIGINT END FROM ({rel})"
        ).fetchall()
        out["duckdb"] = {"rows": len(rows)}
        out["rows"] = [list(r) for r in rows]
        json.dump(out, sys.stdout, default=str)
        return
    if fmt == "parquet":
        src = f"read_parquet('{store}/patches/**/*.parquet', hive_partitioning = true)"
        isrc = f"read_parquet('{store}/instances/**/*.parquet', hive_partitioning = true)"
        dataset = ds.dataset(f"{store}/patches", format="parquet", partitioning="hive")
        idataset = ds.dataset(f"{store}/instances", format="parquet", partitioning="hive")
    else:
        src = f"read_json('{store}/patches/**/*.jsonl', hive_partitioning = true, format = 'newline_delimited')"
        isrc = f"read_json('{store}/instances/**/*.jsonl', hive_partitioning = true, format = 'newline_delimited')"
        dataset = ds.dataset(f"{store}/patches", format="json", partitioning="hive")
        idataset = ds.dataset(f"{store}/instances", format="json", partitioning="hive")
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    rows = con.execute(
        f"SELECT instance_id, kb_id, state, epoch(installed_time)::BIGINT FROM {src}"
    ).fetchall()
    distinct = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT run_id, instance_id, kb_id FROM {src})").fetchone()[0]
    inst = con.execute(
        f"SELECT instance_id, outcome, patch_rows, missing_count, last_scan_time FROM {isrc}"
    ).fetchall()
    table = dataset.to_table()
    itable = idataset.to_table()
    out["duckdb"] = {"rows": len(rows), "distinct": distinct, "types": types}
    out["pyarrow"] = {
        "rows": table.num_rows,
        "types": {f.name: str(f.type) for f in table.schema},
        "instances": itable.num_rows,
    }
    out["rows"] = [list(r) for r in rows]
    out["instances"] = [[r[0], r[1], r[2], r[3], str(r[4]) if r[4] is not None else None] for r in inst]
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # skip teardown: pyarrow's thread pools can abort it on a loaded machine
