//! Release dates of the patches a run saw (docs/semantics.md §1.3, §8.3): the clock PCI DSS 6.3.3
//! and FedRAMP SI-2 count from. `DescribeInstancePatches` does not carry them; AWS publishes them
//! in `ssm:DescribeAvailablePatches`, which (its API reference) "supports only the Amazon Linux 1,
//! Amazon Linux 2, and Windows Server operating systems". Each patch is asked once per run, in
//! batches of at most 20 values per filter (the `PatchOrchestratorFilter` limit): Windows by KB
//! number (key `PATCH_ID`), Amazon Linux 2 by package (keys `PRODUCT`, which a Linux query must
//! carry, `NAME`, `VERSION`, `RELEASE`), matched on name, architecture, epoch, version and release.
//! A date AWS does not give stays null; a denial or a failed call never fails the run: it leaves
//! the dates null and says so once.

use crate::aws::{AwsFleet, NodeInfo, Patch, to_utc};
use aws_sdk_ssm::types::PatchOrchestratorFilter;
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The catalogs `DescribeAvailablePatches` answers for that a run can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalog {
    Windows,
    AmazonLinux2,
}

impl Catalog {
    /// A node's catalog, from what SSM's agent reports (`PlatformType` Windows; `PlatformName`
    /// "Amazon Linux" with `PlatformVersion` "2") or, without a node record, EC2's platform.
    pub fn of(platform_details: Option<&str>, node: Option<&NodeInfo>) -> Option<Catalog> {
        let windows = node.and_then(|n| n.platform_type.as_deref()) == Some("Windows")
            || platform_details.is_some_and(|p| p.starts_with("Windows"));
        if windows {
            return Some(Catalog::Windows);
        }
        let node = node?;
        (node.platform_name.as_deref() == Some("Amazon Linux")
            && node.platform_version.as_deref() == Some("2"))
        .then_some(Catalog::AmazonLinux2)
    }
}

/// What identifies one patch in a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Kb(String),
    /// name, arch, epoch, version, release
    Package(String, String, String, String, String),
}

/// A patch row's key: the KB on Windows; on Amazon Linux, `name.arch` of its `KBId` and
/// `epoch:version-release` of its title (§6.5).
fn key(catalog: Catalog, patch: &Patch) -> Option<Key> {
    match catalog {
        Catalog::Windows => patch
            .kb_id
            .starts_with("KB")
            .then(|| Key::Kb(patch.kb_id.clone())),
        Catalog::AmazonLinux2 => {
            let (name, arch) = patch.kb_id.rsplit_once('.')?;
            let full = patchtrail_model::patch_version(&patch.kb_id, &patch.title)?;
            let (epoch, rest) = full.split_once(':')?;
            let (version, release) = rest.rsplit_once('-')?;
            Some(Key::Package(
                name.into(),
                arch.into(),
                epoch.into(),
                version.into(),
                release.into(),
            ))
        }
    }
}

/// The key of a patch `DescribeAvailablePatches` listed.
fn listed_key(catalog: Catalog, p: &aws_sdk_ssm::types::Patch) -> Option<Key> {
    match catalog {
        Catalog::Windows => p.kb_number().map(|kb| Key::Kb(kb.to_string())),
        Catalog::AmazonLinux2 => Some(Key::Package(
            p.name()?.into(),
            p.arch()?.into(),
            p.epoch().to_string(),
            p.version()?.into(),
            p.release()?.into(),
        )),
    }
}

/// Values per filter (`PatchOrchestratorFilter.Values`: 0 to 20 items).
const PER_CALL: usize = 20;

fn filter(key: &str, values: impl IntoIterator<Item = String>) -> PatchOrchestratorFilter {
    PatchOrchestratorFilter::builder()
        .key(key)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

/// The filters that ask for `keys` (at most [`PER_CALL`] of them).
fn filters(catalog: Catalog, keys: &[Key]) -> Vec<PatchOrchestratorFilter> {
    match catalog {
        Catalog::Windows => vec![filter(
            "PATCH_ID",
            keys.iter().filter_map(|k| match k {
                Key::Kb(kb) => Some(kb.clone()),
                Key::Package(..) => None,
            }),
        )],
        Catalog::AmazonLinux2 => {
            let mut names = BTreeSet::new();
            let mut versions = BTreeSet::new();
            let mut releases = BTreeSet::new();
            for k in keys {
                if let Key::Package(name, _, _, version, release) = k {
                    names.insert(name.clone());
                    versions.insert(version.clone());
                    releases.insert(release.clone());
                }
            }
            vec![
                filter("PRODUCT", ["AmazonLinux2.0".to_string()]),
                filter("NAME", names),
                filter("VERSION", versions),
                filter("RELEASE", releases),
            ]
        }
    }
}

/// The release dates a run learnt, by key (None: AWS lists no date for it).
#[derive(Debug, Default)]
pub struct ReleaseDates {
    known: Mutex<HashMap<Key, Option<DateTime<Utc>>>>,
    /// Set once the action is denied or fails: the rest of the run does not ask again.
    unavailable: AtomicBool,
}

impl ReleaseDates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Option<DateTime<Utc>>>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `release_date` on every patch of `pages` whose catalog has one.
    pub async fn fill(&self, fleet: &AwsFleet, catalog: Option<Catalog>, pages: &mut [Vec<Patch>]) {
        let Some(catalog) = catalog else { return };
        let keys: Vec<Option<Key>> = pages.iter().flatten().map(|p| key(catalog, p)).collect();
        let unknown: Vec<Key> = {
            let known = self.lock();
            let set: BTreeSet<&Key> = keys
                .iter()
                .flatten()
                .filter(|k| !known.contains_key(*k))
                .collect();
            set.into_iter().cloned().collect()
        };
        for batch in unknown.chunks(PER_CALL) {
            if self.unavailable.load(Ordering::Relaxed) {
                break;
            }
            match fleet.available_patches(filters(catalog, batch)).await {
                Ok(listed) => {
                    let mut known = self.lock();
                    for k in batch {
                        known.entry(k.clone()).or_insert(None);
                    }
                    for p in &listed {
                        if let (Some(k), Some(date)) =
                            (listed_key(catalog, p), p.release_date().and_then(to_utc))
                        {
                            known.insert(k, Some(date));
                        }
                    }
                }
                Err(e) => {
                    if !self.unavailable.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "ssm:DescribeAvailablePatches failed: this run stores no release dates, and SLA limits that count from release count from first detection for its patches (docs/semantics.md §8.3); allow the action to record them");
                    }
                }
            }
        }
        let known = self.lock();
        for (patch, key) in pages.iter_mut().flatten().zip(keys) {
            patch.release_date = key.and_then(|k| known.get(&k).copied().flatten());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(kb: &str, title: &str) -> Patch {
        Patch {
            kb_id: kb.into(),
            title: title.into(),
            classification: String::new(),
            severity: String::new(),
            state: "Missing".into(),
            installed_time: None,
            cve_ids: None,
            installed_time_sent: None,
            release_date: None,
        }
    }

    #[test]
    fn keys_follow_the_wire_shapes() {
        let al2 = key(
            Catalog::AmazonLinux2,
            &patch("kernel.x86_64", "kernel.x86_64:0:5.10.228-219.884.amzn2"),
        );
        assert_eq!(
            al2,
            Some(Key::Package(
                "kernel".into(),
                "x86_64".into(),
                "0".into(),
                "5.10.228".into(),
                "219.884.amzn2".into()
            ))
        );
        assert_eq!(
            key(
                Catalog::Windows,
                &patch("KB5034441", "2024-01 Update (KB5034441)")
            ),
            Some(Key::Kb("KB5034441".into()))
        );
        let node = |name: &str, version: &str| NodeInfo {
            platform_type: Some("Linux".into()),
            platform_name: Some(name.into()),
            platform_version: Some(version.into()),
            ..NodeInfo::default()
        };
        assert_eq!(
            Catalog::of(None, Some(&node("Amazon Linux", "2"))),
            Some(Catalog::AmazonLinux2)
        );
        assert_eq!(Catalog::of(None, Some(&node("Amazon Linux", "2023"))), None);
        assert_eq!(Catalog::of(Some("Windows"), None), Some(Catalog::Windows));
    }
}
