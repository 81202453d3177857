"""Independent readers of patchtrail's report outputs.

usage: check_outputs.py xlsx FILE                 sheets, header rows, frozen panes, filters, a few cells
       check_outputs.py ddl-tables DDL_FILE             the tables a DDL file creates (sqlglot, Athena)
       check_outputs.py ddl DDL_FILE PATCHES_PARQUET INSTANCES_PARQUET
                                                   parse with sqlglot (Athena/Trino), compare columns
"""
import json
import os
import sys


def xlsx(path):
    import openpyxl

    wb = openpyxl.load_workbook(path)
    out = {}
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        out[ws.title] = {
            "header": list(rows[0]) if rows else [],
            "rows": len(rows) - 1,
            "freeze": ws.freeze_panes,
            "filter": ws.auto_filter.ref,
            "first": list(rows[1]) if len(rows) > 1 else [],
        }
    return out


ATHENA = {"string": "VARCHAR", "bigint": "BIGINT", "int": "INT", "timestamp": "TIMESTAMP", "double": "DOUBLE"}
ARROW = {"string": "VARCHAR", "int64": "BIGINT", "int32": "INT", "double": "DOUBLE"}


def ddl_tables(path):
    """The tables a DDL file creates, parsed as Athena SQL by sqlglot."""
    import sqlglot
    from sqlglot import exp

    statements = [s for s in sqlglot.parse(open(path).read(), read="athena") if s is not None]
    return {"tables": sorted(st.this.this.name for st in statements if isinstance(st, exp.Create))}


def ddl(path, patches_file, instances_file):
    import pyarrow.parquet as pq
    import sqlglot
    from sqlglot import exp

    text = open(path).read()
    statements = [s for s in sqlglot.parse(text, read="athena") if s is not None]
    tables = {}
    for st in statements:
        if not isinstance(st, exp.Create):
            continue
        schema = st.this
        name = schema.this.name
        cols = {c.name: c.args["kind"].sql(dialect="trino").upper() for c in schema.expressions if isinstance(c, exp.ColumnDef)}
        tables[name] = cols
    result = {"tables": sorted(tables), "mismatches": []}
    for name, f in (("patches", patches_file), ("instances", instances_file)):
        arrow = pq.read_schema(f)
        expected = {}
        for field in arrow:
            t = str(field.type)
            expected[field.name] = "TIMESTAMP" if t.startswith("timestamp") else ARROW.get(t, t)
        got = tables.get(name, {})
        for col, t in expected.items():
            if got.get(col) != t:
                result["mismatches"].append(f"{name}.{col}: parquet {t}, ddl {got.get(col)}")
        for col in got:
            if col not in expected:
                result["mismatches"].append(f"{name}.{col}: in the DDL, not in the Parquet file")
    return result


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "xlsx":
        out = xlsx(sys.argv[2])
    elif mode == "ddl-tables":
        out = ddl_tables(sys.argv[2])
    else:
        out = ddl(*sys.argv[2:5])
    json.dump(out, sys.stdout, default=str)
    sys.stdout.flush()
    os._exit(0)  # skip teardown: pyarrow's thread pools can abort it on a loaded machine
