//! The seed workflow's own history: day partitions of `{"Patches":[...]}` pages with no manifest,
//! read as snapshots (docs/semantics.md §1.2, §4.7), by reports in place and by
//! `import --from-seed` into a store of patchtrail's own.
//!
//! A page is the seed workflow's when its name does not carry the tag of a run patchtrail claimed;
//! each day partition of such pages is one snapshot, from its first page's write to its last. An
//! instance's pages are taken in the order they were written (the workflow writes one page, waits a
//! second, writes the next), so its rows keep the API's order.

use crate::encode::{SeedPatch, parse_seed_page};
use crate::verify::seed_page_key;
use crate::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use patchtrail_model::{InstanceRecord, InstanceSnapshot, Outcome, PatchRecord};
use std::collections::BTreeMap;

/// One day partition of the seed workflow's pages: one snapshot.
#[derive(Debug, Clone)]
pub struct SeedDay {
    pub date: NaiveDate,
    /// Its first page's write time: the snapshot time.
    pub started: DateTime<Utc>,
    /// Its last page's write time: when it was complete (§1.4).
    pub finished: DateTime<Utc>,
    /// `(key, write time)` of its pages.
    pub pages: Vec<(String, DateTime<Utc>)>,
}

impl SeedDay {
    /// The run id reports give it: `seed-YYYYMMDD`.
    pub fn run_id(&self) -> String {
        format!("seed-{}", self.date.format("%Y%m%d"))
    }
}

/// Where a snapshot's rows belong: its run and scope.
#[derive(Debug, Clone)]
pub struct RowContext<'a> {
    pub run_id: &'a str,
    pub snapshot_time: DateTime<Utc>,
    pub account_id: &'a str,
    pub region: &'a str,
}

impl RowContext<'_> {
    /// The rows of one seed page of `instance_id`, as the page holds them (§1.3: states as sent).
    pub fn patch_rows(&self, instance_id: &str, page: Vec<SeedPatch>) -> Vec<PatchRecord> {
        page.into_iter()
            .map(|p| PatchRecord {
                run_id: self.run_id.to_string(),
                snapshot_time: self.snapshot_time,
                account_id: self.account_id.to_string(),
                region: self.region.to_string(),
                instance_id: instance_id.to_string(),
                installed_time: p.installed_at(),
                installed_time_sent: p.installed_sent(),
                kb_id: p.kb_id,
                title: p.title,
                classification: p.classification,
                severity: p.severity,
                state: p.state,
                cve_ids: p.cve_ids,
                release_date: None,
            })
            .collect()
    }
}

impl Store {
    /// The seed workflow's snapshots in this store (pages patchtrail's runs wrote are left out),
    /// oldest first.
    pub async fn seed_workflow_days(&self) -> Result<Vec<SeedDay>, StoreError> {
        let pages = self.seed_layout_pages().await?;
        if pages.is_empty() {
            return Ok(Vec::new());
        }
        let foreign = self.unlisted(&pages, &Default::default()).await?;
        Ok(foreign
            .seed_days
            .into_iter()
            .filter_map(|(date, pages)| {
                Some(SeedDay {
                    date,
                    started: pages.iter().map(|(_, t)| *t).min()?,
                    finished: pages.iter().map(|(_, t)| *t).max()?,
                    pages,
                })
            })
            .collect())
    }

    /// The instances of one seed-workflow snapshot with their pages, in page order; a page that
    /// cannot be read is left out with a line in `warnings`.
    pub async fn read_seed_day(
        &self,
        day: &SeedDay,
        context: &RowContext<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<InstanceSnapshot>, StoreError> {
        let mut by_instance: BTreeMap<String, Vec<(DateTime<Utc>, &str)>> = BTreeMap::new();
        for (key, modified) in &day.pages {
            if let Some((_, instance_id)) = seed_page_key(key) {
                by_instance
                    .entry(instance_id)
                    .or_default()
                    .push((*modified, key.as_str()));
            }
        }
        let mut out = Vec::with_capacity(by_instance.len());
        for (instance_id, mut keys) in by_instance {
            keys.sort();
            let names: Vec<String> = keys.iter().map(|(_, k)| k.to_string()).collect();
            let mut pages = Vec::with_capacity(names.len());
            for (key, bytes) in names.iter().zip(self.get_many(&names).await?) {
                match parse_seed_page(&bytes) {
                    Ok(page) => pages.push(context.patch_rows(&instance_id, page)),
                    Err(e) => warnings.push(format!("skipped {key}: {e}")),
                }
            }
            let instance = InstanceRecord {
                run_id: context.run_id.to_string(),
                snapshot_time: context.snapshot_time,
                account_id: context.account_id.to_string(),
                region: context.region.to_string(),
                instance_id,
                tags: "{}".into(),
                outcome: Outcome::Ok,
                patch_pages: pages.len() as i64,
                patch_rows: pages.iter().map(|p| p.len() as i64).sum(),
                ..InstanceRecord::default()
            };
            out.push(InstanceSnapshot { instance, pages });
        }
        Ok(out)
    }
}
