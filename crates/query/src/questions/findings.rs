//! The auditor's questions (docs/semantics.md §8): how long each patch stayed outstanding on each
//! instance, whether that met the SLA, which CVEs that exposed, and which findings are accepted
//! risks.
//!
//! Everything rests on one table, `_findings`, computed once per report: the reporting snapshots
//! of each instance are numbered in time order, the rows of outstanding patches are grouped into
//! runs of consecutive numbers (gaps and islands), and each island is one finding with the
//! snapshots just before and after it. The SLA and exposure reports are plain selections over it.

use super::snapshots::instance_states;
use crate::QueryError;
use crate::history::{LoadedHistory, RunInfo};
use crate::judgments::{SlaPolicy, Waivers};
use crate::report::{Report, Table};
use crate::sql::{quote, run_list};
use chrono::{DateTime, Utc};

/// The classes of an outstanding patch (§8.1): applicable and not in effect.
const OUTSTANDING: &str = "('missing', 'failed', 'pending_reboot')";

/// The classes that fix a finding (§8.1).
const FIXED: &str = "('installed', 'not_applicable')";

/// Seconds between two timestamp expressions.
fn seconds(from: &str, to: &str) -> String {
    format!("(date_part('epoch', {to}) - date_part('epoch', {from}))")
}

/// Days, one decimal, from a number of seconds.
fn days(secs: &str) -> String {
    format!("ROUND(({secs}) / 86400.0, 1)")
}

/// §8.5: per group of `groups` over `rows` (which has those columns and `d`, days as a
/// float): the count, and the nearest-rank median and 90th percentile of `d`, one decimal.
fn nearest_rank(rows: &str, groups: &str, count: &str) -> String {
    format!(
        "WITH r AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY {groups} ORDER BY d) AS rn,
                      COUNT(*) OVER (PARTITION BY {groups}) AS n FROM ({rows}) AS x)
         SELECT {groups}, MAX(n) AS {count},
           {median} AS median_days, {p90} AS p90_days
         FROM r GROUP BY {groups} ORDER BY {groups}",
        median = days_at_rank("0.5"),
        p90 = days_at_rank("0.9"),
    )
}

/// The smallest `d` with at least `share` of the group's values at or below it.
fn days_at_rank(share: &str) -> String {
    format!("ROUND(MIN(CASE WHEN rn >= ceil({share} * n) THEN d END), 1)")
}

impl LoadedHistory {
    /// The runs a report as of `instant` may read (§8.2): those in force by then.
    fn in_force_by(&self, instant: DateTime<Utc>) -> Vec<&RunInfo> {
        self.runs
            .iter()
            .filter(|r| r.finished_at <= instant)
            .collect()
    }

    /// Computes `_findings` (§8.1, §8.2, §8.3, §8.6) as of `instant` and registers it; also
    /// `_finding_cves`, one row per finding and CVE id it names (§8.4).
    async fn findings(
        &self,
        instant: DateTime<Utc>,
        label: &str,
        stale_days: u32,
        policy: &SlaPolicy,
        waivers: &Waivers,
    ) -> Result<(), QueryError> {
        let current = self.require_as_of(instant, label)?;
        let runs = run_list(&self.in_force_by(instant));
        let latest = run_list(&current);
        let t = format!("to_timestamp_micros({})", instant.timestamp_micros());
        let key = |a: &str, b: &str| {
            format!(
                "{a}.account_id = {b}.account_id AND {a}.region = {b}.region AND {a}.instance_id = {b}.instance_id"
            )
        };
        // The reporting snapshots of each instance, numbered in time order (§8.1), with the
        // instance's name and tags there.
        let numbered = self
            .query(
                "_reporting",
                &format!(
                    "SELECT account_id, region, instance_id, name, tags, run_id, snapshot_time,
                       ROW_NUMBER() OVER (PARTITION BY account_id, region, instance_id ORDER BY snapshot_time, run_id) AS n
                     FROM ({states}) WHERE reporting",
                    states = instance_states(&runs, stale_days),
                ),
            )
            .await?;
        self.keep("_reporting", &numbered)?;
        // One row per island of outstanding rows: (instance, kb, group) with its first and
        // last snapshot numbers, and the patch as its first row describes it.
        let islands = format!(
            "WITH o AS (
               SELECT rep.account_id, rep.region, rep.instance_id, rep.n, p.kb_id, p.title, p.severity, p.classification
               FROM patches p JOIN _reporting rep ON p.run_id = rep.run_id AND {k_prep}
               WHERE p.run_id IN {runs} AND state_class(p.state) IN {OUTSTANDING}),
             isl AS (
               SELECT o.*, n - ROW_NUMBER() OVER (PARTITION BY account_id, region, instance_id, kb_id ORDER BY n) AS grp FROM o)
             SELECT account_id, region, instance_id, kb_id, MIN(n) AS first_n, MAX(n) AS last_n,
               first_value(title ORDER BY n) AS title, first_value(severity ORDER BY n) AS severity,
               first_value(classification ORDER BY n) AS classification
             FROM isl GROUP BY account_id, region, instance_id, kb_id, grp",
            k_prep = key("p", "rep"),
        );
        let isl = self.query("_islands", &islands).await?;
        self.keep("_islands", &isl)?;
        // CVE ids of every row of every island (§8.4), upper-cased and trimmed.
        let cves = self
            .query(
                "_finding_cves",
                &format!(
                    "WITH rep AS (SELECT account_id, region, instance_id, run_id, n FROM _reporting),
                          rows AS (
                            SELECT i.account_id, i.region, i.instance_id, i.kb_id, i.first_n, p.cve_ids
                            FROM _islands i JOIN rep ON {k_irep} AND rep.n BETWEEN i.first_n AND i.last_n
                            JOIN patches p ON p.run_id = rep.run_id AND {k_prep} AND p.kb_id = i.kb_id
                            WHERE p.run_id IN {runs} AND p.cve_ids IS NOT NULL),
                          split AS (SELECT account_id, region, instance_id, kb_id, first_n,
                                      unnest(string_to_array(cve_ids, ',')) AS raw FROM rows)
                     SELECT DISTINCT account_id, region, instance_id, kb_id, first_n, upper(trim(raw)) AS cve_id
                     FROM split WHERE trim(raw) <> ''",
                    k_irep = key("i", "rep"),
                    k_prep = key("p", "rep"),
                ),
            )
            .await?;
        self.keep("_finding_cves", &cves)?;
        let open_secs = seconds("f.first_seen", &t);
        let findings = format!(
            "WITH cv AS (
               SELECT account_id, region, instance_id, kb_id, first_n,
                 array_to_string(array_sort(array_agg(cve_id)), ',') AS cve_ids
               FROM _finding_cves GROUP BY account_id, region, instance_id, kb_id, first_n),
             cur AS (SELECT DISTINCT account_id, region, instance_id FROM instances WHERE run_id IN {latest}),
             f AS (
               SELECT i.account_id, i.region, i.instance_id, rl.name, rl.tags, i.kb_id, i.title,
                 severity_level(i.severity) AS severity_level, i.classification, cv.cve_ids,
                 rf.snapshot_time AS first_seen, rl.snapshot_time AS last_seen,
                 rb.snapshot_time AS previous_snapshot, rr.snapshot_time AS next_snapshot,
                 CASE WHEN rr.run_id IS NOT NULL THEN COALESCE(state_class(pr.state), 'no_longer_reported')
                      WHEN cur.instance_id IS NULL THEN 'instance_gone' END AS resolution
               FROM _islands i
               JOIN _reporting rf ON {k_irf} AND rf.n = i.first_n
               JOIN _reporting rl ON {k_irl} AND rl.n = i.last_n
               LEFT JOIN _reporting rb ON {k_irb} AND rb.n = i.first_n - 1
               LEFT JOIN _reporting rr ON {k_irr} AND rr.n = i.last_n + 1
               LEFT JOIN (SELECT run_id, account_id, region, instance_id, kb_id, state FROM patches WHERE run_id IN {runs}) pr
                 ON pr.run_id = rr.run_id AND {k_prr} AND pr.kb_id = i.kb_id
               LEFT JOIN cv ON {k_icv} AND cv.kb_id = i.kb_id AND cv.first_n = i.first_n
               LEFT JOIN cur ON {k_icur}),
             d AS (
               SELECT f.*,
                 CASE WHEN next_snapshot IS NOT NULL THEN {closed}
                      WHEN resolution = 'instance_gone' THEN {seen}
                      ELSE {open_secs} END AS open_secs,
                 CASE WHEN resolution IS NULL THEN {open_secs} ELSE {seen} END AS min_secs,
                 CASE WHEN previous_snapshot IS NULL OR resolution = 'instance_gone' THEN NULL
                      WHEN next_snapshot IS NOT NULL THEN {closed_max}
                      ELSE {open_max} END AS max_secs,
                 {limit} AS limit_days
               FROM f)
             SELECT account_id, region, instance_id, name, kb_id, title, severity_level, classification, cve_ids,
               first_seen, last_seen, previous_snapshot,
               CASE WHEN next_snapshot IS NOT NULL THEN next_snapshot END AS resolved_at, resolution,
               {d_open} AS days_open, {d_min} AS days_open_min, {d_max} AS days_open_max, limit_days,
               CASE WHEN resolution IN {FIXED} THEN
                      CASE WHEN open_secs > limit_days * 86400 THEN 'fixed_late' ELSE 'fixed_in_time' END
                    WHEN resolution IS NULL THEN
                      CASE WHEN open_secs > limit_days * 86400 THEN 'breached' ELSE 'open' END
                    ELSE 'resolved_other' END AS status,
               {waived} AS waived_by, CASE WHEN {waived} IS NULL THEN {expired} END AS expired_waiver, tags, open_secs
             FROM d",
            k_irf = key("i", "rf"),
            k_irl = key("i", "rl"),
            k_irb = key("i", "rb"),
            k_irr = key("i", "rr"),
            k_prr = key("pr", "rr"),
            k_icv = key("i", "cv"),
            k_icur = key("i", "cur"),
            closed = seconds("f.first_seen", "f.next_snapshot"),
            seen = seconds("f.first_seen", "f.last_seen"),
            closed_max = seconds("f.previous_snapshot", "f.next_snapshot"),
            open_max = seconds("f.previous_snapshot", &t),
            limit = policy.limit_sql(),
            d_open = days("open_secs"),
            d_min = days("min_secs"),
            d_max = days("max_secs"),
            waived = waivers.first_match_sql(instant, true),
            expired = waivers.first_match_sql(instant, false),
        );
        let table = self.query("_findings", &findings).await?;
        self.keep("_findings", &table)?;
        Ok(())
    }

    /// Notes every §8 report carries: the policy and waivers it applied.
    fn judgment_notes(&self, policy: Option<&SlaPolicy>, waivers: &Waivers) -> Vec<String> {
        let mut notes = self.notes();
        notes.extend(policy.map(SlaPolicy::describe));
        notes.extend(waivers.describe());
        notes
    }

    /// `waivers` (§8.6): every entry with the findings it matches and its state at `instant`.
    async fn waiver_table(
        &self,
        instant: DateTime<Utc>,
        waivers: &Waivers,
    ) -> Result<Table, QueryError> {
        let rows: Vec<String> = waivers
            .entries
            .iter()
            .enumerate()
            .map(|(position, w)| {
                let text = |v: &Option<String>| v.as_deref().map_or("NULL".into(), quote);
                format!(
                    "SELECT {position} AS position, {id} AS id, {instance} AS instance, {tag} AS tag, {kb} AS kb, {cve} AS cve,
                       {reason} AS reason, {approver} AS approver, {expires} AS expires,
                       (SELECT COUNT(*) FROM _findings WHERE {m}) AS findings,
                       CASE WHEN (SELECT COUNT(*) FROM _findings WHERE {m}) = 0 THEN 'unused'
                            WHEN {holds} THEN 'active' ELSE 'expired' END AS state",
                    id = quote(&w.id),
                    instance = text(&w.instance),
                    tag = text(&w.tag.as_ref().map(|(k, v)| format!("{k}={v}"))),
                    kb = text(&w.kb),
                    cve = text(&w.cve),
                    reason = quote(&w.reason),
                    approver = quote(&w.approver),
                    expires = quote(&w.expires.to_string()),
                    m = w.matches_sql(),
                    holds = w.holds_at(instant),
                )
            })
            .collect();
        let sql = if rows.is_empty() {
            "SELECT CAST(NULL AS VARCHAR) AS id, CAST(NULL AS VARCHAR) AS instance, CAST(NULL AS VARCHAR) AS tag,
               CAST(NULL AS VARCHAR) AS kb, CAST(NULL AS VARCHAR) AS cve, CAST(NULL AS VARCHAR) AS reason,
               CAST(NULL AS VARCHAR) AS approver, CAST(NULL AS VARCHAR) AS expires, CAST(0 AS BIGINT) AS findings,
               CAST(NULL AS VARCHAR) AS state WHERE false"
                .to_string()
        } else {
            // In file order.
            format!(
                "SELECT id, instance, tag, kb, cve, reason, approver, expires, findings, state
                 FROM ({}) ORDER BY position",
                rows.join(" UNION ALL ")
            )
        };
        self.query("waivers", &sql).await
    }

    /// §8.3: every finding first seen by `instant` against the policy's limit, and per scope.
    pub async fn sla(
        &self,
        instant: DateTime<Utc>,
        label: &str,
        stale_days: u32,
        policy: &SlaPolicy,
        waivers: &Waivers,
    ) -> Result<Report, QueryError> {
        self.findings(instant, label, stale_days, policy, waivers)
            .await?;
        let findings = self
            .query(
                "findings",
                "SELECT account_id, region, instance_id, name, kb_id, title, severity_level, classification, cve_ids,
                   first_seen, last_seen, previous_snapshot, resolved_at, resolution,
                   days_open, days_open_min, days_open_max, limit_days, status, waived_by, expired_waiver
                 FROM _findings
                 ORDER BY CASE status WHEN 'breached' THEN 0 WHEN 'fixed_late' THEN 1 WHEN 'open' THEN 2
                                      WHEN 'fixed_in_time' THEN 3 ELSE 4 END,
                          days_open DESC, account_id, region, instance_id, kb_id, first_seen",
            )
            .await?;
        let count = |status: &str| {
            format!(
                "SUM(CASE WHEN waived_by IS NULL AND status = '{status}' THEN 1 ELSE 0 END) AS {status}"
            )
        };
        let by_scope = self
            .query(
                "by_scope",
                &format!(
                    "SELECT account_id, region, {}, {}, {}, {}, {},
                       SUM(CASE WHEN waived_by IS NOT NULL THEN 1 ELSE 0 END) AS waived
                     FROM _findings GROUP BY account_id, region ORDER BY breached DESC, account_id, region",
                    count("breached"),
                    count("fixed_late"),
                    count("open"),
                    count("fixed_in_time"),
                    count("resolved_other"),
                ),
            )
            .await?;
        let (remediation, open_age) = self.remediation(instant).await?;
        let mut charts = super::charts::sla(self.lang, &by_scope)?;
        charts.extend(super::charts::remediation(self.lang, &remediation)?);
        let mut tables = vec![findings, by_scope, remediation, open_age];
        if waivers.source.is_some() {
            tables.push(self.waiver_table(instant, waivers).await?);
        }
        Ok(Report {
            title: self.lang.sla_title(label),
            subtitle: Self::describe(&self.require_as_of(instant, label)?),
            lang: self.lang,
            tables,
            charts,
            notes: self.judgment_notes(Some(policy), waivers),
        })
    }

    /// §8.5 over `_findings`: days to remediate per month and severity level, and the age of
    /// what was open at each snapshot in force by `instant`.
    async fn remediation(&self, instant: DateTime<Utc>) -> Result<(Table, Table), QueryError> {
        let fixed = format!(
            "SELECT to_char(resolved_at, '%Y-%m') AS month, severity_level, open_secs / 86400.0 AS d
             FROM _findings WHERE resolution IN {FIXED}"
        );
        let remediation = self
            .query(
                "remediation",
                &nearest_rank(&fixed, "month, severity_level", "fixed"),
            )
            .await?;
        let open = format!(
            "SELECT r.snapshot_time, r.run_id, r.account_id, r.region, f.severity_level,
               {age} / 86400.0 AS d
             FROM runs r JOIN _findings f ON f.account_id = r.account_id AND f.region = r.region
             WHERE r.run_id IN {runs} AND f.first_seen <= r.snapshot_time
               AND CASE WHEN f.resolved_at IS NOT NULL THEN r.snapshot_time < f.resolved_at
                        WHEN f.resolution = 'instance_gone' THEN r.snapshot_time <= f.last_seen
                        ELSE true END",
            age = seconds("f.first_seen", "r.snapshot_time"),
            runs = run_list(&self.in_force_by(instant)),
        );
        let open_age = self
            .query(
                "open_age",
                &nearest_rank(
                    &open,
                    "snapshot_time, run_id, account_id, region, severity_level",
                    "open",
                ),
            )
            .await?;
        Ok((remediation, open_age))
    }

    /// §8.4: per snapshot, the instances exposed to `cve` (a reporting instance with an
    /// outstanding patch whose row names it), and which.
    pub async fn cve_history(&self, cve: &str, stale_days: u32) -> Result<Report, QueryError> {
        let all = run_list(&self.runs.iter().collect::<Vec<_>>());
        let wanted = quote(&format!(",{},", cve.trim().to_ascii_uppercase()));
        let exposed = self
            .query(
                "instances",
                &format!(
                    "SELECT s.snapshot_time, s.run_id, s.account_id, s.region, s.instance_id, s.name, p.kb_id, p.state
                     FROM ({states}) s JOIN patches p ON p.run_id = s.run_id AND p.account_id = s.account_id
                       AND p.region = s.region AND p.instance_id = s.instance_id
                     WHERE s.reporting AND p.run_id IN {all} AND state_class(p.state) IN {OUTSTANDING}
                       AND strpos(',' || upper(replace(COALESCE(p.cve_ids, ''), ' ', '')) || ',', {wanted}) > 0
                     ORDER BY s.snapshot_time, s.run_id, s.account_id, s.region, s.instance_id, p.kb_id",
                    states = instance_states(&all, stale_days),
                ),
            )
            .await?;
        self.keep("_cve_instances", &exposed)?;
        let timeline = self
            .query(
                "snapshots",
                &format!(
                    "SELECT r.snapshot_time, r.run_id, r.account_id, r.region,
                       COUNT(DISTINCT e.account_id || '/' || e.region || '/' || e.instance_id) AS exposed_instances
                     FROM runs r LEFT JOIN _cve_instances e ON e.run_id = r.run_id
                     WHERE r.run_id IN {all}
                     GROUP BY r.snapshot_time, r.run_id, r.account_id, r.region ORDER BY r.snapshot_time, r.run_id"
                ),
            )
            .await?;
        let charts = super::charts::over_time(
            self.lang,
            &timeline,
            &self.lang.history_title(cve),
            &["exposed_instances"],
        )?;
        Ok(Report {
            title: self.lang.history_title(cve),
            subtitle: self.lang.snapshot_count(timeline.rows()),
            lang: self.lang,
            tables: vec![timeline, exposed],
            charts,
            notes: self.notes(),
        })
    }

    /// §8.4: instances exposed to CVEs (all, or those of `cves`) and CVEs ranked by exposure.
    pub async fn exposure(
        &self,
        instant: DateTime<Utc>,
        label: &str,
        stale_days: u32,
        cves: &[String],
        waivers: &Waivers,
    ) -> Result<Report, QueryError> {
        self.findings(instant, label, stale_days, &SlaPolicy::default(), waivers)
            .await?;
        let only = if cves.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = cves
                .iter()
                .map(|c| quote(&c.to_ascii_uppercase()))
                .collect();
            format!("WHERE c.cve_id IN ({})", list.join(", "))
        };
        let exposed = format!(
            "SELECT f.account_id, f.region, f.instance_id, f.name, c.cve_id, f.kb_id, f.title, f.severity_level,
               f.first_seen AS first_seen_exposed, f.last_seen AS last_seen_exposed,
               CASE WHEN f.resolution IN {FIXED} THEN f.resolved_at END AS fixed_at, f.resolution,
               f.days_open AS days_exposed, f.open_secs, f.waived_by
             FROM _findings f JOIN _reporting rf ON rf.account_id = f.account_id AND rf.region = f.region
               AND rf.instance_id = f.instance_id AND rf.snapshot_time = f.first_seen
             JOIN _finding_cves c ON c.account_id = f.account_id AND c.region = f.region
               AND c.instance_id = f.instance_id AND c.kb_id = f.kb_id AND c.first_n = rf.n
             {only}"
        );
        let table = self.query("_exposure", &exposed).await?;
        self.keep("_exposure", &table)?;
        let exposure = self
            .query(
                "exposure",
                "SELECT account_id, region, instance_id, name, cve_id, kb_id, title, severity_level,
                   first_seen_exposed, last_seen_exposed, fixed_at, resolution, days_exposed, waived_by
                 FROM _exposure ORDER BY cve_id, resolution IS NOT NULL, days_exposed DESC, account_id, region, instance_id, kb_id",
            )
            .await?;
        let ranked = self
            .query(
                "cves",
                "SELECT cve_id, COUNT(DISTINCT account_id || '/' || region || '/' || instance_id) AS instances,
                   COUNT(*) AS findings, ROUND(SUM(open_secs) / 86400.0, 1) AS instance_days,
                   COUNT(DISTINCT CASE WHEN resolution IS NULL THEN account_id || '/' || region || '/' || instance_id END) AS still_exposed,
                   SUM(CASE WHEN waived_by IS NOT NULL THEN 1 ELSE 0 END) AS waived
                 FROM _exposure GROUP BY cve_id ORDER BY SUM(open_secs) DESC, instances DESC, cve_id",
            )
            .await?;
        let blind = self
            .query(
                "without_cve_ids",
                "SELECT f.severity_level, COUNT(*) AS findings,
                   COUNT(DISTINCT f.account_id || '/' || f.region || '/' || f.instance_id) AS instances,
                   SUM(CASE WHEN f.resolution IS NULL THEN 1 ELSE 0 END) AS open
                 FROM _findings f WHERE f.cve_ids IS NULL
                 GROUP BY f.severity_level ORDER BY findings DESC, f.severity_level",
            )
            .await?;
        let charts = super::charts::exposure(self.lang, &ranked)?;
        let mut tables = vec![exposure, ranked, blind];
        if waivers.source.is_some() {
            tables.push(self.waiver_table(instant, waivers).await?);
        }
        Ok(Report {
            title: self.lang.exposure_title(label, cves),
            subtitle: Self::describe(&self.require_as_of(instant, label)?),
            lang: self.lang,
            tables,
            charts,
            notes: self.judgment_notes(None, waivers),
        })
    }
}
