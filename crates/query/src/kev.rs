//! CISA's Known Exploited Vulnerabilities catalog (docs/semantics.md §8.3), read from the file an
//! auditor names (`--kev FILE`), never fetched: the report states which catalog it applied (its
//! SHA-256, `catalogVersion` and `dateReleased`), so the answer can be reproduced later.
//!
//! The shape is CISA's JSON feed (`known_exploited_vulnerabilities.json`, schema
//! `cisagov/kev-data`): `catalogVersion`, `dateReleased`, and `vulnerabilities`, each with
//! `cveID`, `dateAdded` and `dueDate` (`YYYY-MM-DD`) and `knownRansomwareCampaignUse`
//! (`Known` or `Unknown`). BOD 22-01 asks agencies to remediate each entry by its `dueDate`.

use crate::QueryError;
use crate::judgments::Source;
use chrono::NaiveDate;
use patchtrail_store::sha256_hex;
use std::collections::HashMap;

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KevEntry {
    pub date_added: NaiveDate,
    pub due_date: NaiveDate,
    /// `knownRansomwareCampaignUse` is `Known`.
    pub ransomware: bool,
}

/// A catalog, or none (`Kev::default()`).
#[derive(Debug, Clone, Default)]
pub struct Kev {
    /// By CVE id, upper-cased.
    pub entries: HashMap<String, KevEntry>,
    pub source: Option<Source>,
    pub catalog_version: String,
    pub date_released: String,
}

fn bad(path: &str, fix: impl Into<String>) -> QueryError {
    QueryError::BadInput {
        input: path.to_string(),
        fix: fix.into(),
    }
}

impl Kev {
    /// Reads CISA's JSON feed.
    pub fn parse(path: &str, text: &str) -> Result<Self, QueryError> {
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            bad(
                path,
                format!("not JSON ({e}); give CISA's known_exploited_vulnerabilities.json"),
            )
        })?;
        let list = doc["vulnerabilities"].as_array().ok_or_else(|| {
            bad(
                path,
                "no \"vulnerabilities\" list: give CISA's known_exploited_vulnerabilities.json",
            )
        })?;
        let field =
            |entry: &serde_json::Value, n: usize, name: &str| -> Result<String, QueryError> {
                entry[name].as_str().map(str::to_string).ok_or_else(|| {
                    bad(path, format!("vulnerabilities[{n}] has no \"{name}\" text"))
                })
            };
        let mut entries = HashMap::with_capacity(list.len());
        for (n, entry) in list.iter().enumerate() {
            let id = field(entry, n, "cveID")?;
            let cve = patchtrail_model::cve_id(&id).ok_or_else(|| {
                bad(
                    path,
                    format!("vulnerabilities[{n}] cveID \"{id}\" is not a CVE id (CVE-YYYY-NNNN)"),
                )
            })?;
            let date = |name: &str| -> Result<NaiveDate, QueryError> {
                let text = field(entry, n, name)?;
                NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
                    bad(
                        path,
                        format!("{cve}: {name} \"{text}\" is not a date (YYYY-MM-DD)"),
                    )
                })
            };
            let parsed = KevEntry {
                date_added: date("dateAdded")?,
                due_date: date("dueDate")?,
                ransomware: entry["knownRansomwareCampaignUse"].as_str() == Some("Known"),
            };
            if entries.insert(cve.clone(), parsed).is_some() {
                return Err(bad(
                    path,
                    format!("{cve} is listed twice: a catalog lists a CVE once"),
                ));
            }
        }
        let text_of = |name: &str| doc[name].as_str().unwrap_or("unstated").to_string();
        Ok(Kev {
            entries,
            source: Some(Source {
                path: path.to_string(),
                sha256: sha256_hex(text.as_bytes()),
            }),
            catalog_version: text_of("catalogVersion"),
            date_released: text_of("dateReleased"),
        })
    }

    pub fn get(&self, cve: &str) -> Option<&KevEntry> {
        self.entries.get(cve)
    }

    /// One line for the report's notes and provenance; None without a catalog.
    pub fn describe(&self) -> Option<String> {
        self.source.as_ref().map(|s| {
            format!(
                "KEV catalog {} (sha256 {}): version {}, released {}, {} CVEs",
                s.path,
                s.sha256,
                self.catalog_version,
                self.date_released,
                self.entries.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = r#"{"title": "CISA Catalog of Known Exploited Vulnerabilities",
        "catalogVersion": "2026.03.02", "dateReleased": "2026-03-02T17:00:00.0000Z", "count": 2,
        "vulnerabilities": [
          {"cveID": "CVE-2026-0001", "vendorProject": "Microsoft", "product": "Windows",
           "dateAdded": "2026-01-20", "dueDate": "2026-02-10", "knownRansomwareCampaignUse": "Known"},
          {"cveID": "cve-2026-0003", "dateAdded": "2026-02-01", "dueDate": "2026-02-22",
           "knownRansomwareCampaignUse": "Unknown"}]}"#;

    #[test]
    fn reads_cisas_feed() {
        let kev = Kev::parse("kev.json", FEED).expect("catalog");
        let e = kev.get("CVE-2026-0001").expect("listed");
        assert_eq!(e.due_date.to_string(), "2026-02-10");
        assert!(e.ransomware);
        assert!(!kev.get("CVE-2026-0003").expect("upper-cased").ransomware);
        let note = kev.describe().expect("a note");
        assert!(
            note.contains("version 2026.03.02") && note.contains("2 CVEs"),
            "{note}"
        );
    }

    #[test]
    fn a_bad_catalog_is_refused_naming_the_entry() {
        for (text, needle) in [
            ("[]", "no \"vulnerabilities\" list"),
            ("{", "not JSON"),
            (
                r#"{"vulnerabilities": [{"cveID": "=1+1", "dateAdded": "2026-01-01", "dueDate": "2026-01-02"}]}"#,
                "is not a CVE id",
            ),
            (
                r#"{"vulnerabilities": [{"cveID": "CVE-2026-0001", "dateAdded": "2026-01-01", "dueDate": "soon"}]}"#,
                "CVE-2026-0001: dueDate \"soon\" is not a date",
            ),
            (
                r#"{"vulnerabilities": [{"cveID": "CVE-2026-0001", "dateAdded": "2026-01-01", "dueDate": "2026-01-02"},
                   {"cveID": "CVE-2026-0001", "dateAdded": "2026-01-01", "dueDate": "2026-01-09"}]}"#,
                "listed twice",
            ),
        ] {
            let e = Kev::parse("kev.json", text).expect_err(text).to_string();
            assert!(
                e.starts_with("kev.json") && e.contains(needle),
                "{text}: {e}"
            );
        }
    }
}
