//! What an organisation decides about findings, read at report time and never written into
//! history: the SLA policy (maximum days per severity level and classification, §8.3) and the
//! waivers that accept findings as risks (§8.6). Both are small TOML files a reviewer can read;
//! each report names the file and its SHA-256, so an auditor knows exactly which decisions it
//! applied.

use crate::QueryError;
use chrono::{DateTime, NaiveDate, Utc};
use patchtrail_store::sha256_hex;
use std::collections::BTreeMap;

/// The severity levels of §3.1, in report order.
pub const SEVERITY_LEVELS: [&str; 5] = ["critical", "high", "medium", "low", "unspecified"];

/// Limits in whole days: at least one, at most ten years.
const LIMIT_RANGE: std::ops::RangeInclusive<i64> = 1..=3650;

/// Where a policy or waiver file came from, for the report's notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: String,
    pub sha256: String,
}

/// §8.3: what a limit counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The first snapshot that saw the patch outstanding (discovery).
    FirstSeen,
    /// AWS's release date of the patch (`first_seen` when AWS gives none).
    Released,
}

impl Clock {
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::FirstSeen => "first_seen",
            Clock::Released => "released",
        }
    }
}

/// §8.3: a limit in whole days and the clock it counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub days: u32,
    pub from: Clock,
}

impl Limit {
    const fn from_first_seen(days: u32) -> Self {
        Limit {
            days,
            from: Clock::FirstSeen,
        }
    }

    fn describe(&self) -> String {
        match self.from {
            Clock::FirstSeen => self.days.to_string(),
            Clock::Released => format!("{} from release", self.days),
        }
    }
}

/// §8.3: maximum days per severity level, and per classification where the policy names one,
/// each with its clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaPolicy {
    /// Every level of [`SEVERITY_LEVELS`].
    pub severity: BTreeMap<String, Limit>,
    /// Classifications, lower-cased (§3.2 compares them without regard to case).
    pub classification: BTreeMap<String, Limit>,
    /// The file it was read from; `None` for the default.
    pub source: Option<Source>,
}

impl Default for SlaPolicy {
    /// After PCI DSS v4.0.1 requirement 6.3.3: patches for critical vulnerabilities within one
    /// month of release; the other levels' time frames are the entity's (§8.3).
    fn default() -> Self {
        let released = |days| Limit {
            days,
            from: Clock::Released,
        };
        let severity = [
            ("critical", released(30)),
            ("high", Limit::from_first_seen(30)),
            ("medium", Limit::from_first_seen(90)),
            ("low", Limit::from_first_seen(180)),
            ("unspecified", Limit::from_first_seen(180)),
        ];
        Self {
            severity: severity.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            classification: [("criticalupdates".to_string(), released(30))].into(),
            source: None,
        }
    }
}

fn bad(path: &str, fix: impl Into<String>) -> QueryError {
    QueryError::BadInput {
        input: path.to_string(),
        fix: fix.into(),
    }
}

fn parse_toml(path: &str, text: &str) -> Result<toml::Table, QueryError> {
    text.parse::<toml::Table>().map_err(|e| {
        bad(
            path,
            format!("not valid TOML ({}); see docs/semantics.md §8", e.message()),
        )
    })
}

/// A TOML value as a reader wrote it (the crate's own Display needs its serializer).
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("\"{s}\""),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        other => format!("a {}", other.type_str()),
    }
}

fn days(path: &str, what: &str, value: &toml::Value) -> Result<u32, QueryError> {
    match value.as_integer() {
        Some(days) if LIMIT_RANGE.contains(&days) => Ok(days as u32),
        _ => Err(bad(
            path,
            format!(
                "{what} = {}: a limit is a whole number of days from 1 to 3650",
                shown(value)
            ),
        )),
    }
}

/// A limit as written: `days` (from first_seen) or `{ days = N, from = "released" }`.
fn limit(path: &str, what: &str, value: &toml::Value) -> Result<Limit, QueryError> {
    let Some(table) = value.as_table() else {
        return days(path, what, value).map(Limit::from_first_seen);
    };
    let fix = || {
        bad(
            path,
            format!(
                "{what}: write a number of days, or {{ days = 30, from = \"released\" }} (from is first_seen or released, docs/semantics.md §8.3)"
            ),
        )
    };
    if table.keys().any(|k| k != "days" && k != "from") {
        return Err(fix());
    }
    let days = days(path, what, table.get("days").ok_or_else(fix)?)?;
    let from = match table.get("from").map(|v| v.as_str()) {
        None | Some(Some("first_seen")) => Clock::FirstSeen,
        Some(Some("released")) => Clock::Released,
        Some(_) => return Err(fix()),
    };
    Ok(Limit { days, from })
}

/// The level a policy key sets (§3.1, §8.3): a level, or any value the §3.1 table names
/// (`Important` sets high, Debian's `optional` sets unspecified); None for a word the table
/// does not name, a typo rather than `unspecified`.
fn policy_level(key: &str) -> Option<&'static str> {
    /// Values §3.1 maps to `unspecified` by name (its "anything else" is not a key).
    const NAMED_UNSPECIFIED: [&str; 6] = [
        "unspecified",
        "none",
        "required",
        "standard",
        "optional",
        "extra",
    ];
    let lower = key.trim().to_ascii_lowercase();
    match patchtrail_model::severity_level(&lower) {
        "unspecified" => NAMED_UNSPECIFIED
            .contains(&lower.as_str())
            .then_some("unspecified"),
        level => Some(level),
    }
}

impl SlaPolicy {
    /// Reads a policy file: `[severity]` and `[classification]` tables of `name = days`; a level
    /// or classification it omits keeps the default.
    pub fn parse(path: &str, text: &str) -> Result<Self, QueryError> {
        let doc = parse_toml(path, text)?;
        let mut policy = Self::default();
        for (section, table) in &doc {
            let entries = table.as_table().ok_or_else(|| {
                bad(
                    path,
                    format!("{section} is not a table: write [severity] or [classification] above its lines"),
                )
            })?;
            match section.as_str() {
                "severity" => {
                    // Level → the key that set it: two keys naming one level are refused, since
                    // which of them wins would depend on TOML's key order.
                    let mut set: BTreeMap<&str, &str> = BTreeMap::new();
                    for (name, days) in entries {
                        let level = policy_level(name).ok_or_else(|| {
                            bad(
                                path,
                                format!(
                                    "[severity] {name}: not a severity level; use one of {} \
                                     (or a value docs/semantics.md §3.1 maps to one)",
                                    SEVERITY_LEVELS.join(", ")
                                ),
                            )
                        })?;
                        if let Some(first) = set.insert(level, name) {
                            return Err(bad(
                                path,
                                format!(
                                    "[severity] {first} and {name} both set level {level}: keep one"
                                ),
                            ));
                        }
                        policy.severity.insert(
                            level.to_string(),
                            limit(path, &format!("[severity] {name}"), days)?,
                        );
                    }
                }
                "classification" => {
                    let mut set: BTreeMap<String, &str> = BTreeMap::new();
                    for (name, days) in entries {
                        let days = limit(path, &format!("[classification] {name}"), days)?;
                        // §3.2: compared trimmed and without regard to case.
                        let class = name.trim().to_ascii_lowercase();
                        if let Some(first) = set.insert(class.clone(), name) {
                            return Err(bad(
                                path,
                                format!(
                                    "[classification] {first} and {name} name one classification \
                                     (compared without case or spaces): keep one"
                                ),
                            ));
                        }
                        policy.classification.insert(class, days);
                    }
                }
                other => {
                    return Err(bad(
                        path,
                        format!(
                            "[{other}]: unknown table; a policy has [severity] and [classification]"
                        ),
                    ));
                }
            }
        }
        policy.source = Some(Source {
            path: path.to_string(),
            sha256: sha256_hex(text.as_bytes()),
        });
        Ok(policy)
    }

    /// The limits that apply to a finding of `level` and `classification` (§8.3): its level's,
    /// then its classification's (compared without regard to case or surrounding spaces) if the
    /// policy names one.
    pub fn limits(&self, level: &str, classification: &str) -> impl Iterator<Item = Limit> + '_ {
        let by_class = self
            .classification
            .get(&classification.trim_matches(' ').to_lowercase());
        self.severity
            .get(level)
            .into_iter()
            .chain(by_class)
            .copied()
    }

    /// One line for the report's notes.
    pub fn describe(&self) -> String {
        let levels: Vec<String> = SEVERITY_LEVELS
            .iter()
            .map(|l| {
                let limit = self.severity.get(*l).map(Limit::describe);
                format!("{l} {}", limit.unwrap_or_default())
            })
            .collect();
        let classes: Vec<String> = self
            .classification
            .iter()
            .map(|(c, d)| format!("{c} {}", d.describe()))
            .collect();
        let origin = match &self.source {
            Some(s) => format!("{} (sha256 {})", s.path, s.sha256),
            None => "the default (after PCI DSS v4.0.1 6.3.3)".into(),
        };
        format!(
            "SLA policy {origin}: days per severity {}; per classification {}",
            levels.join(", "),
            if classes.is_empty() {
                "none".into()
            } else {
                classes.join(", ")
            }
        )
    }
}

/// §8.6: one accepted risk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    pub id: String,
    pub instance: Option<String>,
    pub tag: Option<(String, String)>,
    pub kb: Option<String>,
    pub cve: Option<String>,
    pub reason: String,
    pub approver: String,
    /// Holds until the end of this day, UTC.
    pub expires: NaiveDate,
}

impl Waiver {
    /// Whether it still holds at `instant`.
    pub fn holds_at(&self, instant: DateTime<Utc>) -> bool {
        instant.date_naive() <= self.expires
    }

    /// Whether a finding of `instance_id`, with the instance's `tags` (a JSON object) and the
    /// patch `kb_id` naming `cve_ids` (comma-separated), matches it: every condition it sets.
    pub fn matches(
        &self,
        instance_id: &str,
        tags: &str,
        kb_id: &str,
        cve_ids: Option<&str>,
    ) -> bool {
        self.instance.as_ref().is_none_or(|i| i == instance_id)
            && self.tag.as_ref().is_none_or(|(k, v)| {
                let tags: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(tags).unwrap_or_default();
                tags.get(k).and_then(|t| t.as_str()) == Some(v.as_str())
            })
            && self.kb.as_ref().is_none_or(|kb| kb == kb_id)
            && self.cve.as_ref().is_none_or(|cve| {
                format!(",{},", cve_ids.unwrap_or_default()).contains(&format!(",{cve},"))
            })
    }
}

/// A waiver file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Waivers {
    pub entries: Vec<Waiver>,
    pub source: Option<Source>,
}

fn text_field(
    path: &str,
    id: &str,
    entry: &toml::Table,
    key: &str,
) -> Result<Option<String>, QueryError> {
    match entry.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Some(other) => Err(bad(
            path,
            format!(
                "waiver {id}: {key} = {}: write a non-empty string",
                shown(other)
            ),
        )),
    }
}

impl Waivers {
    /// Reads `[[waiver]]` entries: selectors `instance`, `tag` (`Key=Value`), `kb`, `cve` (at
    /// least one), and `reason`, `approver`, `expires` (YYYY-MM-DD), all required; `id` is
    /// optional (default `W<n>`, numbered from 1 in file order).
    pub fn parse(path: &str, text: &str) -> Result<Self, QueryError> {
        let doc = parse_toml(path, text)?;
        if let Some(other) = doc.keys().find(|k| *k != "waiver") {
            return Err(bad(
                path,
                format!("{other}: unknown key; a waiver file holds [[waiver]] entries"),
            ));
        }
        let list = match doc.get("waiver") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items.clone(),
            Some(_) => {
                return Err(bad(path, "waiver: write each entry as a [[waiver]] table"));
            }
        };
        let mut entries = Vec::with_capacity(list.len());
        for (n, item) in list.iter().enumerate() {
            let default_id = format!("W{}", n + 1);
            let entry = item
                .as_table()
                .ok_or_else(|| bad(path, format!("waiver {default_id}: not a table")))?;
            let known = [
                "id", "instance", "tag", "kb", "cve", "reason", "approver", "expires",
            ];
            if let Some(k) = entry.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(bad(
                    path,
                    format!(
                        "waiver {default_id}: unknown key {k}; use {}",
                        known.join(", ")
                    ),
                ));
            }
            let id = text_field(path, &default_id, entry, "id")?.unwrap_or(default_id);
            if entries.iter().any(|w: &Waiver| w.id == id) {
                return Err(bad(
                    path,
                    format!("waiver id {id} is used twice: give each its own"),
                ));
            }
            // Reason and approver are what a person wrote for an auditor: kept as written.
            let required = |key: &str| -> Result<String, QueryError> {
                text_field(path, &id, entry, key)?
                    .ok_or_else(|| bad(path, format!("waiver {id}: {key} is required")))?;
                Ok(entry
                    .get(key)
                    .and_then(toml::Value::as_str)
                    .unwrap_or_default()
                    .to_string())
            };
            let tag = match text_field(path, &id, entry, "tag")? {
                None => None,
                Some(t) => match t.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        Some((k.trim().to_string(), v.trim().to_string()))
                    }
                    _ => {
                        return Err(bad(
                            path,
                            format!(
                                "waiver {id}: tag = \"{t}\": write Key=Value, e.g. Environment=dev"
                            ),
                        ));
                    }
                },
            };
            let expires = match entry.get("expires") {
                Some(toml::Value::Datetime(d)) => d.to_string(),
                Some(toml::Value::String(s)) => s.clone(),
                Some(other) => shown(other),
                None => return Err(bad(path, format!("waiver {id}: expires is required"))),
            };
            let expires = NaiveDate::parse_from_str(expires.trim(), "%Y-%m-%d").map_err(|_| {
                bad(
                    path,
                    format!("waiver {id}: expires = {expires}: write a date, YYYY-MM-DD"),
                )
            })?;
            let waiver = Waiver {
                instance: text_field(path, &id, entry, "instance")?,
                tag,
                kb: text_field(path, &id, entry, "kb")?,
                cve: match text_field(path, &id, entry, "cve")? {
                    None => None,
                    Some(c) => Some(patchtrail_model::cve_id(&c).ok_or_else(|| {
                        bad(
                            path,
                            format!(
                                "waiver {id}: cve = \"{c}\": give one CVE id, e.g. CVE-2024-38063 \
                                 (one waiver per CVE)"
                            ),
                        )
                    })?),
                },
                reason: required("reason")?,
                approver: required("approver")?,
                expires,
                id,
            };
            if waiver.instance.is_none()
                && waiver.tag.is_none()
                && waiver.kb.is_none()
                && waiver.cve.is_none()
            {
                return Err(bad(
                    path,
                    format!(
                        "waiver {}: give at least one of instance, tag, kb, cve",
                        waiver.id
                    ),
                ));
            }
            entries.push(waiver);
        }
        Ok(Self {
            entries,
            source: Some(Source {
                path: path.to_string(),
                sha256: sha256_hex(text.as_bytes()),
            }),
        })
    }

    /// The id of the first entry that matches a finding (see [`Waiver::matches`]) and holds at
    /// `instant` (`active`), or of the first that matches but expired (not `active`).
    pub fn first_match(
        &self,
        instant: DateTime<Utc>,
        active: bool,
        instance_id: &str,
        tags: &str,
        kb_id: &str,
        cve_ids: Option<&str>,
    ) -> Option<&str> {
        self.entries
            .iter()
            .find(|w| w.holds_at(instant) == active && w.matches(instance_id, tags, kb_id, cve_ids))
            .map(|w| w.id.as_str())
    }

    /// One line for the report's notes.
    pub fn describe(&self) -> Option<String> {
        self.source.as_ref().map(|s| {
            format!(
                "waivers {} (sha256 {}): {} entries, applied at report time",
                s.path,
                s.sha256,
                self.entries.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_overrides_what_it_names_and_keeps_the_rest() {
        let p = SlaPolicy::parse(
            "p.toml",
            "[severity]\nCritical = 14\nImportant = 21\n[classification]\nSecurityUpdates = 60\n",
        )
        .expect("policy");
        let first_seen = Limit::from_first_seen;
        assert_eq!(p.severity["critical"], first_seen(14));
        assert_eq!(
            p.severity["high"],
            first_seen(21),
            "Important is high (§3.1)"
        );
        assert_eq!(p.severity["medium"], first_seen(90));
        assert_eq!(p.classification["securityupdates"], first_seen(60));
        let released = Limit {
            days: 30,
            from: Clock::Released,
        };
        assert_eq!(p.classification["criticalupdates"], released, "the default");
        let p = SlaPolicy::parse(
            "p.toml",
            "[severity]\nhigh = { days = 14, from = \"released\" }\nlow = { days = 60 }\n",
        )
        .expect("policy");
        assert_eq!(p.severity["high"].from, Clock::Released);
        assert_eq!(p.severity["low"], first_seen(60));
        let limits: Vec<Limit> = p.limits("high", " CriticalUpdates").collect();
        assert_eq!(limits.len(), 2);
        assert_eq!(p.source.as_ref().map(|s| s.sha256.len()), Some(64));
    }

    #[test]
    fn bad_policies_and_waivers_name_the_fix() {
        for (text, needle) in [
            ("[severity]\nurgent = 3\n", "not a severity level"),
            ("[severity]\ncritical = 0\n", "from 1 to 3650"),
            (
                "[severity]\ncritical = { days = 30, from = \"patch_tuesday\" }\n",
                "from is first_seen or released",
            ),
            (
                "[severity]\ncritical = { days = 30, since = \"released\" }\n",
                "from is first_seen or released",
            ),
            ("[severity]\ncritical = \"30\"\n", "whole number"),
            ("[limits]\n", "unknown table"),
            ("[severity\n", "not valid TOML"),
            (
                "[severity]\nhigh = 60\nImportant = 40\n",
                "both set level high",
            ),
            (
                "[severity]\nrequired = 60\nunspecified = 40\n",
                "both set level unspecified",
            ),
            (
                "[classification]\nSecurityUpdates = 60\n\" securityupdates\" = 40\n",
                "name one classification",
            ),
        ] {
            let e = SlaPolicy::parse("p.toml", text)
                .expect_err(text)
                .to_string();
            assert!(e.contains(needle) && e.starts_with("p.toml"), "{text}: {e}");
        }
        for (text, needle) in [
            (
                "[[waiver]]\nkb = \"KB1\"\napprover = \"a\"\nexpires = 2027-01-01\n",
                "reason is required",
            ),
            (
                "[[waiver]]\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\n",
                "at least one of",
            ),
            (
                "[[waiver]]\nkb = \"KB1\"\nreason = \"r\"\napprover = \"a\"\nexpires = \"next year\"\n",
                "YYYY-MM-DD",
            ),
            (
                "[[waiver]]\ntag = \"dev\"\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\n",
                "Key=Value",
            ),
            (
                "[[waiver]]\nkb = \"KB1\"\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\nuntil = 1\n",
                "unknown key",
            ),
            (
                "[[waiver]]\ncve = \"CVE-2026-0001, CVE-2026-0002\"\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\n",
                "give one CVE id",
            ),
            (
                "[[waiver]]\ncve = \"=1+1\"\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\n",
                "give one CVE id",
            ),
        ] {
            let e = Waivers::parse("w.toml", text).expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn every_value_section_3_1_names_sets_its_level() {
        let p = SlaPolicy::parse("p.toml", "[severity]\nModerate = 45\noptional = 200\n")
            .expect("policy");
        assert_eq!(
            (p.severity["medium"].days, p.severity["unspecified"].days),
            (45, 200)
        );
        for name in ["required", "standard", "extra", "None", "Unspecified"] {
            let p = SlaPolicy::parse("p.toml", &format!("[severity]\n{name} = 7\n"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.severity["unspecified"].days, 7, "{name}");
        }
    }

    #[test]
    fn reason_and_approver_are_kept_as_written() {
        let w = Waivers::parse(
            "w.toml",
            "[[waiver]]\nkb = \"KB1\"\nreason = \"  two  spaces \"\napprover = \" 山田 \"\nexpires = 2027-01-01\n",
        )
        .expect("waivers");
        let w = &w.entries[0];
        assert_eq!(
            (w.reason.as_str(), w.approver.as_str()),
            ("  two  spaces ", " 山田 ")
        );
    }

    #[test]
    fn a_waiver_holds_to_the_end_of_its_day() {
        let w = Waivers::parse(
            "w.toml",
            "[[waiver]]\ncve = \"cve-2026-0001\"\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-31\n",
        )
        .expect("waivers");
        let w = &w.entries[0];
        assert_eq!(
            (w.id.as_str(), w.cve.as_deref()),
            ("W1", Some("CVE-2026-0001"))
        );
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        assert!(w.holds_at(at("2027-01-31T23:59:59Z")));
        assert!(!w.holds_at(at("2027-02-01T00:00:00Z")));
    }
}
