"""Checks `patchtrail export ocsf` output with tools that share nothing with it.

Usage: ocsf_check.py JSONL_DIR PARQUET_DIR

- Every JSON-lines event is validated against OCSF 1.1.0 as JSON Schema (the `ocsf-json-schema`
  package: the schema server's export of v1.1.0, each class with the profiles the event's
  `metadata.profiles` names; unknown attributes are errors).
- DuckDB reads the Parquet tree as Amazon Security Lake would (hive partitions region=,
  accountId=, eventDay=): the column types are printed, each file holds one class, each row's
  partition values agree with its cloud.region, cloud.account.uid and the UTC day of its `time`,
  and the rows are the JSON lines' events, field for field.

Prints one JSON object: counts, errors (empty when everything holds) and the column types.
"""

import glob
import json
import os
import sys

import duckdb
import jsonschema
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema


def main():
    jsonl_dir, parquet_dir = sys.argv[1], sys.argv[2]
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema("1.1.0"))
    errors = []
    events = {}
    validators = {}
    for path in sorted(glob.glob(os.path.join(jsonl_dir, "*.jsonl"))):
        name = os.path.basename(path)
        cls = name.split("-")[0]
        events[cls] = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                event = json.loads(line)
                events[cls].append(event)
                profiles = tuple(event.get("metadata", {}).get("profiles", []))
                key = (cls, profiles)
                if key not in validators:
                    validators[key] = jsonschema.Draft202012Validator(
                        schema.get_class_schema(cls, list(profiles))
                    )
                for e in validators[key].iter_errors(event):
                    errors.append(f"{name}:{n}: {'/'.join(map(str, e.absolute_path))}: {e.message}")

    con = duckdb.connect()
    types = {}
    rows_by_class = {}
    for cls in sorted(events):
        files = glob.glob(os.path.join(parquet_dir, cls, "**", "*.parquet"), recursive=True)
        if not files:
            if events[cls]:
                errors.append(f"{cls}: no Parquet file for {len(events[cls])} events")
            continue
        rel = con.sql(
            f"SELECT * FROM read_parquet({files!r}, hive_partitioning = true, filename = true)"
        )
        types[cls] = {c: str(t) for c, t in zip(rel.columns, rel.types)}
        mismatched = con.sql(
            f"""SELECT filename FROM read_parquet({files!r}, hive_partitioning = true, filename = true)
                WHERE cloud.region <> region OR cloud.account.uid <> CAST(accountId AS VARCHAR)
                   OR strftime(epoch_ms(time), '%Y%m%d') <> CAST(eventDay AS VARCHAR)
                   OR class_uid <> (SELECT min(class_uid) FROM read_parquet({files!r}, hive_partitioning = false))"""
        ).fetchall()
        errors += [f"{cls}: a row outside its partition or class in {m[0]}" for m in mismatched]
        fetched = con.sql(
            f"SELECT to_json(t) FROM read_parquet({files!r}, hive_partitioning = false) t ORDER BY finding_info.uid"
        ).fetchall()
        rows = [json.loads(r[0]) for r in fetched]
        rows_by_class[cls] = len(rows)
        expected = sorted(events[cls], key=lambda e: e["finding_info"]["uid"])
        if len(rows) != len(expected):
            errors.append(f"{cls}: {len(rows)} Parquet rows, {len(expected)} JSON lines")
        for row, event in zip(rows, expected):
            diff = differences(event, row, "")
            if diff:
                errors.append(f"{cls} {event['finding_info']['uid']}: {diff[:3]}")
    print(
        json.dumps(
            {
                "events": {c: len(v) for c, v in events.items()},
                "parquet_rows": rows_by_class,
                "errors": errors[:50],
                "error_count": len(errors),
                "types": types,
            }
        )
    )


def differences(expected, got, path):
    """Where `got` (a Parquet row as JSON, nulls for absent attributes, maps as objects)
    differs from `expected` (the JSON line)."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r}"]
        out = []
        for k, v in expected.items():
            out += differences(v, got.get(k), f"{path}/{k}")
        out += [f"{path}/{k}: extra {v!r}" for k, v in got.items() if k not in expected and v is not None]
        return out
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return [f"{path}: {got!r} != {expected!r}"]
        out = []
        for i, (e, g) in enumerate(zip(expected, got)):
            out += differences(e, g, f"{path}[{i}]")
        return out
    return [] if expected == got else [f"{path}: {got!r} != {expected!r}"]


if __name__ == "__main__":
    main()
