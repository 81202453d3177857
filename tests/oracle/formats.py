"""Every report output format, parsed back into rows.

`fetch(bin, store, args, fmt, table)` runs one `patchtrail report` and returns {table name: rows}:
`json`, `jsonl` and `csv` carry one table (`--table`, the report's main one by default); `markdown`
(without `--table`) and `xlsx` (a sheet per table) carry every table of the report at once.

`canon(fmt, col, v)` is what a value of column `col` looks like once written in `fmt` and read back here,
so that the oracle's expected rows (Python values) and the product's (parsed text) compare exactly:
- JSON / JSON lines: null, numbers, booleans and strings as themselves; times as instants.
- Every format but JSON shows a bidirectional control (U+202A-U+202E, U+2066-U+2069) as `[U+202E]`
  (§7.1); JSON keeps it (written as a `\\u` escape, which json.loads decodes).
- CSV: null is an empty cell, booleans `true`/`false`; a text cell that begins with `=`, `+`, `-`, `@`,
  their full-width forms, a tab or a carriage return gets a leading `'` (§7.1), compared exactly.
- Markdown: null is an empty cell; `|` is written `\\|`, a line feed or carriage return as a space (a table row
  is one line), any other control character as its Unicode picture, `&`, `<`, `>` as entities (§7.1).
- XLSX: text as text cells (§7.1), numbers as numbers; null and "" are both an empty cell.
Text formats cannot tell null from "" (CSV, Markdown, XLSX): there both are the empty cell.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import tempfile
from datetime import datetime

import oracle as O

SINGLE_TABLE = ("json", "jsonl", "csv")
ALL_TABLES = ("markdown", "xlsx")
FORMATS = SINGLE_TABLE + ALL_TABLES

TS_COLUMNS = {"last_scan_time", "last_ping_time", "snapshot_time", "from_last_scan", "to_last_scan",
              "latest_snapshot", "first_seen", "first_seen_missing", "first_seen_installed"}
NUMERIC_COLUMNS = (set(O.FLEET_COLUMNS) | set(O.CLASS_COLUMNS)
                   | {"scan_age_days", "regions", "count", "compliant_instances", "noncompliant_instances",
                      "unknown_instances", "unmanaged_instances", "error_instances"}) - {"compliance"}
BOOL_COLUMNS = {"agrees_with_aws"}
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def _bidi_shown(v):
    """§7.1: each bidirectional control written as [U+XXXX]."""
    return "".join(f"[U+{ord(c):04X}]" if ord(c) in _BIDI else c for c in v)


def _control_shown(c):
    """§7.1, terminal and Markdown: C0 controls and DEL as their Unicode pictures, C1 as U+FFFD."""
    n = ord(c)
    if n < 0x20:
        return chr(0x2400 + n)
    if n == 0x7F:
        return "\u2421"
    if 0x80 <= n <= 0x9F:
        return "\ufffd"
    return c


class ProductError(AssertionError):
    pass


class NotInForce(Exception):
    """The product refused a report because no snapshot is in force, or none holds the instance or
    patch asked for, or a scope filter admits no run (§5.4, §5.5)."""


REFUSALS = ("error: no snapshot at or before ", "no snapshot lies in that range", "no snapshot holds this",
            "error: no committed run of --")


def fetch(binary, store, args, fmt="json", table=None, timeout=180):
    """Runs `patchtrail report ARGS --store STORE --format FMT` and parses what it wrote."""
    cmd = [binary, "report", *args, "--store", store, "--format", fmt, "--lang", "en"]
    if table and fmt in SINGLE_TABLE:
        cmd += ["--table", table]
    out_path = None
    if fmt == "xlsx":
        fd, out_path = tempfile.mkstemp(suffix=".xlsx", prefix="patchtrail-oracle-")
        os.close(fd)
        cmd += ["--output", out_path]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode == 2 and any(s in err for s in REFUSALS):
            raise NotInForce(err.strip())
        if p.returncode != 0:
            raise ProductError(f"`patchtrail {' '.join(cmd[1:])}` exited {p.returncode}:\n{err[-3000:]}")
        label = f"`patchtrail {' '.join(cmd[1:])}`"
        if fmt == "xlsx":
            return parse_xlsx(out_path)
        text = p.stdout.decode("utf-8")
        if fmt == "json":
            rows = json.loads(text)
            if not isinstance(rows, list):
                raise ProductError(f"{label}: not a JSON array: {text[:300]}")
            return {table: rows}
        if fmt == "jsonl":
            return {table: [json.loads(line) for line in text.split("\n") if line.strip()]}
        if fmt == "csv":
            return {table: parse_csv(text)}
        return parse_markdown(text, label)
    finally:
        if out_path:
            os.unlink(out_path)


def parse_csv(text):
    """RFC 4180 rows, every cell a string (null and "" are both the empty cell)."""
    return list(csv.DictReader(io.StringIO(text, newline="")))


_HEADING = re.compile(r"^## (\S+) \((\d+) rows?\)$")
_SEP = re.compile(r"(?<!\\)\|")


def _md_cells(line):
    if not (line.startswith("| ") or line == "|") or not line.endswith("|"):
        raise ValueError(f"not a Markdown table row: {line!r}")
    parts = _SEP.split(line)[1:-1]
    out = []
    for c in parts:
        if not (c.startswith(" ") and c.endswith(" ")) or len(c) < 2:
            raise ValueError(f"a Markdown cell without its padding: {c!r} in {line!r}")
        out.append(c[1:-1].replace("\\|", "|"))
    return out


def parse_markdown(text, label="markdown"):
    """Every `## name (N rows)` table of a Markdown report: {name: rows}, cells as strings."""
    tables = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _HEADING.match(lines[i])
        if not m:
            i += 1
            continue
        name, n = m.group(1), int(m.group(2))
        i += 1
        while i < len(lines) and lines[i] == "":
            i += 1
        rows = []
        if i < len(lines) and lines[i].startswith("| "):
            header = _md_cells(lines[i])
            if i + 1 >= len(lines) or not re.fullmatch(r"\|( -{3,}:? \|)+", lines[i + 1]):
                raise ProductError(f"{label}: table {name} has no separator row under its header")
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = _md_cells(lines[i])
                if len(cells) != len(header):
                    raise ProductError(f"{label}: table {name}: a row of {len(cells)} cells under "
                                       f"{len(header)} columns: {lines[i]!r}")
                rows.append(dict(zip(header, cells)))
                i += 1
        if len(rows) != n:
            raise ProductError(f"{label}: table {name} says {n} rows and has {len(rows)}")
        tables[name] = rows
    return tables


def parse_xlsx(path):
    """Every sheet of the workbook: {sheet name: rows}, the first row naming the columns."""
    import openpyxl
    wb = openpyxl.load_workbook(path, read_only=True, data_only=False)
    out = {}
    for ws in wb.worksheets:
        it = ws.iter_rows(values_only=True)
        header = next(it, None)
        if header is None:
            out[ws.title] = []
            continue
        rows = []
        for vals in it:
            if all(v is None for v in vals):
                continue
            rows.append(dict(zip(header, (_xstring(v) for v in vals))))
        out[ws.title] = rows
    wb.close()
    return out


_X_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _xstring(v):
    """OOXML ST_Xstring: a character XML cannot hold (a carriage return) is written `_xHHHH_`
    (ECMA-376 Part 1, 22.9.2.19); openpyxl hands the escape back as is."""
    return _X_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), v) if isinstance(v, str) else v


# ---------------------------------------------------------------------------------------------
# Canonical values
# ---------------------------------------------------------------------------------------------


def _time(v):
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return O.parse_ts(v).isoformat(timespec="microseconds")
    try:
        return O.parse_ts(v).isoformat(timespec="microseconds")
    except (TypeError, ValueError):
        return ("<not an RFC 3339 time>", v)


def _number(v):
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return ("<a boolean where a number belongs>", v)
    if isinstance(v, (int, float)):
        return int(v) if float(v).is_integer() else float(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ("<not a number>", v)
    return int(f) if f.is_integer() and re.fullmatch(r"-?\d+(\.0*)?", v.strip()) else f


def canon(fmt, col, v):
    """The value `v` of column `col` as `fmt` carries it (see the module doc), for comparison."""
    text = fmt in ("csv", "markdown", "xlsx")
    if col in TS_COLUMNS:
        return _time(v)
    if col in NUMERIC_COLUMNS:
        return _number(v)
    if col in BOOL_COLUMNS:
        if v is None or v == "":
            return None
        if isinstance(v, bool):
            return "true" if v else "false"
        return v if text else ("<not a JSON boolean>", v)
    if v is None:
        return None if fmt in ("json", "jsonl", "xlsx") else ""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if not isinstance(v, str):
        return v
    if fmt == "xlsx" and v == "":
        return None
    return v


def expected_cell(fmt, col, v):
    """What the oracle's value `v` must look like in `fmt` (then canonical)."""
    if isinstance(v, str) and col not in TS_COLUMNS and col not in NUMERIC_COLUMNS:
        if fmt in ("csv", "markdown", "xlsx"):
            v = _bidi_shown(v)  # §7.1
        if fmt == "csv" and v.startswith(_FORMULA):
            v = "'" + v  # §7.1
        elif fmt == "markdown":
            v = "".join(_control_shown(c) for c in v.replace("\n", " ").replace("\r", " "))
            v = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if isinstance(v, datetime):
        v = v.isoformat()
    return canon(fmt, col, v)
