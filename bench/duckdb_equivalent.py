"""Roughly the same report questions asked of DuckDB over the same Parquet files, for *timing*
only (bench/reports.py compares speeds). It is not a correctness reference: the reports are checked
against the independent oracle in tests/oracle, which follows docs/semantics.md.

usage: duckdb_equivalent.py STORE summary AS_OF_ISO
       duckdb_equivalent.py STORE diff FROM_ISO TO_ISO
       duckdb_equivalent.py STORE trend
       duckdb_equivalent.py STORE instance INSTANCE_ID
       duckdb_equivalent.py STORE kb KB_ID
       duckdb_equivalent.py STORE sla AS_OF_ISO
       duckdb_equivalent.py STORE exposure AS_OF_ISO
Snapshots are chosen from the run manifests (runs/**/*.json); only files they list are read.
"""
import glob
import json
import os
import sys

import duckdb

INSTALLED = "('Installed','InstalledOther','InstalledPendingReboot','InstalledRejected')"
CRITICAL = "(lower(severity) = 'critical' OR classification = 'CriticalUpdates')"
SECURITY = "classification IN ('Security','SecurityUpdates')"


def query(store, mode, *args):
    """Answers one report question with DuckDB; returns the rows as dicts."""
    manifests = [json.load(open(p)) for p in glob.glob(f"{store}/runs/**/*.json", recursive=True)]
    files = lambda table: [f"{store}/{o['key']}" for m in manifests for o in m["objects"] if o["key"].startswith(table + "/")]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW patches AS SELECT * FROM read_parquet({files('patches')!r})")
    con.execute(f"CREATE VIEW instances AS SELECT * FROM read_parquet({files('instances')!r})")

    def as_of(iso):
        # the latest manifest at or before the instant, per account and region
        best = {}
        for m in sorted(manifests, key=lambda m: (m["snapshot_time"], m["run_id"])):
            if m["snapshot_time"] <= iso:
                best[(m["account_id"], m["region"])] = m["run_id"]
        return "(" + ",".join(f"'{r}'" for r in best.values()) + ")"

    def rows(sql):
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    counts = lambda runs: f"""
        SELECT run_id, instance_id,
          count(*) FILTER (WHERE state IN {INSTALLED}) AS installed,
          count(*) FILTER (WHERE state = 'Missing') AS missing,
          count(*) FILTER (WHERE state = 'Failed') AS failed,
          count(*) FILTER (WHERE state = 'InstalledPendingReboot') AS pending_reboot,
          count(*) FILTER (WHERE state = 'Missing' AND {CRITICAL}) AS missing_critical,
          count(*) FILTER (WHERE state = 'Missing' AND {SECURITY}) AS missing_security
        FROM patches WHERE run_id IN {runs} GROUP BY ALL"""
    compliance = """CASE WHEN i.outcome = 'unmanaged' THEN 'unmanaged' WHEN i.outcome = 'error' THEN 'unknown'
        WHEN coalesce(p.missing, 0) + coalesce(p.failed, 0) > 0 THEN 'non_compliant' ELSE 'compliant' END"""

    if mode == "summary":
        runs = as_of(args[0])
        out = rows(f"""SELECT i.instance_id, coalesce(p.installed, 0) AS installed, coalesce(p.missing, 0) AS missing,
              coalesce(p.failed, 0) AS failed, coalesce(p.pending_reboot, 0) AS pending_reboot,
              coalesce(p.missing_critical, 0) AS missing_critical, coalesce(p.missing_security, 0) AS missing_security,
              {compliance} AS compliance
            FROM instances i LEFT JOIN ({counts(runs)}) p USING (run_id, instance_id) WHERE i.run_id IN {runs}""")
    elif mode == "diff":
        a, b = as_of(args[0]), as_of(args[1])
        out = rows(f"""
            WITH a AS (SELECT instance_id, kb_id, state FROM patches WHERE run_id IN {a}),
                 b AS (SELECT instance_id, kb_id, state FROM patches WHERE run_id IN {b})
            SELECT b.instance_id, b.kb_id,
                   CASE b.state WHEN 'Missing' THEN 'newly_missing' WHEN 'Installed' THEN 'newly_installed' ELSE 'newly_failed' END AS change,
                   a.state AS from_state, b.state AS to_state
            FROM b LEFT JOIN a USING (instance_id, kb_id)
            WHERE b.state IN ('Missing','Installed','Failed') AND a.state IS DISTINCT FROM b.state
            UNION ALL
            SELECT instance_id, NULL, 'appeared', NULL, NULL FROM instances WHERE run_id IN {b}
              AND instance_id NOT IN (SELECT instance_id FROM instances WHERE run_id IN {a})
            UNION ALL
            SELECT instance_id, NULL, 'disappeared', NULL, NULL FROM instances WHERE run_id IN {a}
              AND instance_id NOT IN (SELECT instance_id FROM instances WHERE run_id IN {b})""")
    elif mode == "trend":
        out = rows(f"""SELECT strftime(i.snapshot_time, '%Y-%m-%dT%H:%M:%S') AS snapshot_time, i.run_id, count(*) AS instances,
              count(*) FILTER (WHERE {compliance} = 'compliant') AS compliant_instances,
              count(*) FILTER (WHERE {compliance} = 'non_compliant') AS noncompliant_instances,
              sum(coalesce(p.missing, 0)) AS missing, sum(coalesce(p.missing_critical, 0)) AS missing_critical,
              sum(coalesce(p.missing_security, 0)) AS missing_security, sum(coalesce(p.failed, 0)) AS failed
            FROM instances i LEFT JOIN ({counts('(SELECT run_id FROM instances)')}) p USING (run_id, instance_id)
            GROUP BY ALL ORDER BY 1""")
    elif mode == "instance":
        out = rows(f"""SELECT strftime(i.snapshot_time, '%Y-%m-%dT%H:%M:%S') AS snapshot_time, coalesce(p.installed, 0) AS installed,
              coalesce(p.missing, 0) AS missing, coalesce(p.failed, 0) AS failed, {compliance} AS compliance
            FROM instances i LEFT JOIN ({counts('(SELECT run_id FROM instances)')}) p USING (run_id, instance_id)
            WHERE i.instance_id = '{args[0]}' ORDER BY 1""")
    elif mode in ("sla", "exposure"):
        # §8.1 roughly: each instance's snapshots numbered, outstanding rows grouped into runs of
        # consecutive numbers (gaps and islands), each island a finding with its days open
        t = args[0]
        runs = "(" + ",".join(f"'{m['run_id']}'" for m in manifests if m["finished_at"] <= t) + ")"
        islands = f"""
            WITH rep AS (SELECT run_id, instance_id, snapshot_time,
                           row_number() OVER (PARTITION BY instance_id ORDER BY snapshot_time) AS n
                         FROM instances WHERE run_id IN {runs}),
                 o AS (SELECT p.instance_id, p.kb_id, p.severity, p.cve_ids, rep.n, rep.snapshot_time
                       FROM patches p JOIN rep USING (run_id, instance_id)
                       WHERE p.state IN ('Missing', 'Failed', 'InstalledPendingReboot')),
                 isl AS (SELECT *, n - row_number() OVER (PARTITION BY instance_id, kb_id ORDER BY n) AS grp FROM o),
                 f AS (SELECT instance_id, kb_id, grp, any_value(severity) AS severity, min(snapshot_time) AS first_seen,
                         max(snapshot_time) AS last_seen, string_agg(DISTINCT cve_ids, ',') AS cve_ids
                       FROM isl GROUP BY instance_id, kb_id, grp)
            SELECT *, date_diff('second', first_seen, TIMESTAMP '{t[:19]}') / 86400.0 AS days_open FROM f"""
        if mode == "sla":
            out = rows(f"""SELECT *, CASE WHEN days_open > CASE lower(severity) WHEN 'critical' THEN 30 WHEN 'high' THEN 30
                  WHEN 'medium' THEN 90 ELSE 180 END THEN 'breached' ELSE 'open' END AS status
                FROM ({islands}) ORDER BY days_open DESC""")
        else:
            out = rows(f"""SELECT trim(cve) AS cve_id, count(DISTINCT instance_id) AS instances, count(*) AS findings,
                  sum(days_open) AS instance_days
                FROM ({islands}), unnest(string_split(cve_ids, ',')) AS c(cve) WHERE trim(cve) <> ''
                GROUP BY ALL ORDER BY instance_days DESC""")
    else:
        out = rows(f"""SELECT instance_id, arg_max(state, snapshot_time) AS latest_state,
              strftime(min(snapshot_time) FILTER (WHERE state = 'Missing'), '%Y-%m-%dT%H:%M:%S') AS first_seen_missing,
              strftime(min(snapshot_time) FILTER (WHERE state IN {INSTALLED}), '%Y-%m-%dT%H:%M:%S') AS first_seen_installed
            FROM patches WHERE kb_id = '{args[0]}' GROUP BY instance_id ORDER BY instance_id""")
    return out


def main():
    store, mode, *args = sys.argv[1:]
    json.dump(query(store, mode, *args), sys.stdout, default=str)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # skip teardown: pyarrow's thread pools can abort it on a loaded machine
