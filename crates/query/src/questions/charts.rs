//! The charts each report draws in HTML, built from the report's own tables (never from a
//! second query), so a chart always shows the numbers printed below it.

use crate::report::{Chart, Series, Table, column, numbers};
use crate::{Lang, QueryError};

/// Chart labels for values that are defined terms (classes, severity levels, change names).
fn values(lang: Lang, raw: Vec<String>) -> Vec<String> {
    raw.iter().map(|v| lang.value(v)).collect()
}

/// `summary`: instances by compliance, missing patches by severity, the most missed patches;
/// with several accounts, non-compliant instances per account.
pub fn summary(
    lang: Lang,
    fleet: &Table,
    severity: &Table,
    top: &Table,
    by_account: &Table,
) -> Result<Vec<Chart>, QueryError> {
    let classes = [
        "compliant",
        "non_compliant",
        "unknown",
        "unmanaged",
        "error",
    ];
    let mut counts = Vec::with_capacity(classes.len());
    for c in classes {
        counts.push(numbers(fleet, c)?.first().copied().unwrap_or(0.0));
    }
    let kb = column(top, "kb_id")?;
    let mut charts = vec![
        Chart::Bars {
            title: lang.chart_by_compliance().into(),
            labels: classes.iter().map(|c| lang.value(c)).collect(),
            values: counts,
        },
        Chart::Bars {
            title: lang.chart_missing_by_severity().into(),
            labels: values(lang, column(severity, "severity_level")?),
            values: numbers(severity, "missing")?,
        },
        Chart::Bars {
            title: lang.chart_most_missed().into(),
            labels: kb,
            values: numbers(top, "instances")?,
        },
    ];
    if by_account.rows() > 1 {
        charts.push(Chart::Bars {
            title: lang.chart_non_compliant_by_account().into(),
            labels: column(by_account, "account_id")?,
            values: numbers(by_account, "non_compliant")?,
        });
    }
    Ok(charts)
}

/// `diff`: changes by kind.
pub fn diff(lang: Lang, counts: &Table) -> Result<Vec<Chart>, QueryError> {
    Ok(vec![Chart::Bars {
        title: lang.chart_changes().into(),
        labels: values(lang, column(counts, "change")?),
        values: numbers(counts, "count")?,
    }])
}

/// Whether column `name` counts instances (rather than patches): one chart axis never mixes
/// the two.
fn counts_instances(name: &str) -> bool {
    name == "instances" || name.ends_with("_instances")
}

/// The line of column `name` of `table`, named as people read it in `lang`.
pub fn series(lang: Lang, table: &Table, name: &str) -> Result<Series, QueryError> {
    Ok(Series {
        name: match lang {
            Lang::En => name.replace('_', " "),
            Lang::Ja => lang.column(name),
        },
        values: numbers(table, name)?,
    })
}

/// The snapshot dates of `table` (its `snapshot_time`, day only): the x labels of charts over time.
pub fn dates(table: &Table) -> Result<Vec<String>, QueryError> {
    Ok(column(table, "snapshot_time")?
        .iter()
        .map(|t| t.chars().take(10).collect())
        .collect())
}

/// Lines of `series` columns over the table's `snapshot_time` (dates as labels), one chart per
/// unit: counts of instances under `title`, counts of patches in a chart of their own (titled
/// as patch counts over time when both are drawn).
pub fn over_time(
    lang: Lang,
    table: &Table,
    title: &str,
    series: &[&str],
) -> Result<Vec<Chart>, QueryError> {
    let labels = dates(table)?;
    let (instances, patches): (Vec<&str>, Vec<&str>) =
        series.iter().copied().partition(|n| counts_instances(n));
    let mut charts = Vec::with_capacity(2);
    for (k, group) in [instances, patches].into_iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        let mut lines = Vec::with_capacity(group.len());
        for name in group {
            lines.push(self::series(lang, table, name)?);
        }
        charts.push(Chart::Lines {
            title: if k == 1 && !charts.is_empty() {
                lang.chart_instance_over_time().to_string()
            } else {
                title.to_string()
            },
            labels: labels.clone(),
            series: lines,
        });
    }
    Ok(charts)
}

/// `sla`: findings per status over the fleet (waived ones apart).
pub fn sla(lang: Lang, by_scope: &Table) -> Result<Vec<Chart>, QueryError> {
    let statuses = [
        "breached",
        "fixed_late",
        "open",
        "fixed_in_time",
        "resolved_other",
        "waived",
    ];
    let mut totals = Vec::with_capacity(statuses.len());
    for s in statuses {
        totals.push(numbers(by_scope, s)?.iter().sum());
    }
    Ok(vec![Chart::Bars {
        title: lang.chart_sla().into(),
        labels: statuses.iter().map(|s| lang.value(s)).collect(),
        values: totals,
    }])
}

/// `exposure`: the CVEs with the most instance-days of exposure.
pub fn exposure(lang: Lang, cves: &Table) -> Result<Vec<Chart>, QueryError> {
    const SHOWN: usize = 15;
    let mut labels = column(cves, "cve_id")?;
    let mut values = numbers(cves, "instance_days")?;
    labels.truncate(SHOWN);
    values.truncate(SHOWN);
    Ok(vec![Chart::Bars {
        title: lang.chart_exposure().into(),
        labels,
        values,
    }])
}

/// `sla` (§8.5): the median days to remediate per month, one line per severity level.
pub fn remediation(lang: Lang, remediation: &Table) -> Result<Vec<Chart>, QueryError> {
    let months = column(remediation, "month")?;
    let levels = column(remediation, "severity_level")?;
    let medians = numbers(remediation, "median_days")?;
    let mut labels = months.clone();
    labels.sort();
    labels.dedup();
    if labels.is_empty() {
        return Ok(Vec::new());
    }
    let mut present: Vec<&str> = crate::judgments::SEVERITY_LEVELS
        .iter()
        .copied()
        .filter(|l| levels.iter().any(|x| x == l))
        .collect();
    present.dedup();
    let series = present
        .iter()
        .map(|level| Series {
            name: lang.value(level),
            values: labels
                .iter()
                .map(|month| {
                    months
                        .iter()
                        .zip(&levels)
                        .zip(&medians)
                        .find(|((m, l), _)| *m == month && l == level)
                        .map_or(0.0, |(_, d)| *d)
                })
                .collect(),
        })
        .collect();
    Ok(vec![Chart::Lines {
        title: lang.chart_remediation().into(),
        labels,
        series,
    }])
}
