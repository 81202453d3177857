//! Where every object of a run goes: the key partitioner, kept pure so it can be tested alone.
//!
//! Keys are relative to the store root. Object names derive from the run id only (no random
//! names), so every object is traced to its run, and a run's objects are named the same in
//! every store.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use patchtrail_model::StoreFormat;
use sha2::{Digest, Sha256};

/// `year=YYYY/month=MM/day=DD`, the seed's Hive date partition.
pub fn date_partition(date: NaiveDate) -> String {
    format!(
        "year={:04}/month={:02}/day={:02}",
        date.year(),
        date.month(),
        date.day()
    )
}

/// Folders under which manifests live: the tables' `runs/` and the seed layout's hidden one.
pub const MANIFEST_PREFIXES: [&str; 2] = ["runs/", "_patchtrail/runs/"];

/// Run ids: `<YYYYMMDD>-<account>-<region>-<seq>`, where seq counts the committed runs of that
/// day, account and region. A retry of a failed run finds the same seq and reuses its names.
pub fn run_id(date: NaiveDate, account_id: &str, region: &str, seq: u32) -> String {
    format!("{}-{account_id}-{region}-{seq:02}", date.format("%Y%m%d"))
}

/// Whether `id` has the shape of a run id (what `--resume` and the Lambda's `resume` take).
pub fn is_run_id(id: &str) -> bool {
    let mut parts = id.splitn(3, '-');
    let (Some(day), Some(account), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let Some((region, seq)) = rest.rsplit_once('-') else {
        return false;
    };
    digits(day, 8)
        && digits(account, 12)
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && seq.len() >= 2
        && seq.bytes().all(|b| b.is_ascii_digit())
}

/// The prefix shared by all run ids of one day, account and region.
pub fn run_id_stem(date: NaiveDate, account_id: &str, region: &str) -> String {
    format!("{}-{account_id}-{region}-", date.format("%Y%m%d"))
}

#[derive(Debug, Clone)]
pub struct RunLayout {
    pub run_id: String,
    pub format: StoreFormat,
    partition: String,
    /// Which process writes (0: the one that began the run; n: the n-th continuation of a
    /// suspended run, see `checkpoint`): continuations name their objects after it, so that no
    /// two processes ever write the same object.
    attempt: u32,
}

impl RunLayout {
    pub fn new(run_id: &str, snapshot_time: DateTime<Utc>, format: StoreFormat) -> RunLayout {
        RunLayout {
            run_id: run_id.to_string(),
            format,
            partition: date_partition(snapshot_time.date_naive()),
            attempt: 0,
        }
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The same run, written by continuation `attempt`.
    pub fn with_attempt(mut self, attempt: u32) -> RunLayout {
        self.attempt = attempt;
        self
    }

    /// What this attempt's table objects are named after: the run id, then `-rNNN` for a
    /// continuation (still `<run_id>-…`, so `verify` knows whose they are).
    fn stem(&self) -> String {
        match self.attempt {
            0 => self.run_id.clone(),
            n => format!("{}-r{n:03}", self.run_id),
        }
    }

    fn table_ext(&self) -> &'static str {
        match self.format {
            StoreFormat::Parquet => "parquet",
            StoreFormat::Jsonl | StoreFormat::Seed => "jsonl",
        }
    }

    /// The folder holding the patch parts of this run (for finding leftovers of a failed try).
    pub fn patches_dir(&self) -> String {
        format!("patches/{}/", self.partition)
    }

    pub fn patches_part(&self, part: u32) -> String {
        format!(
            "{}{}-{part:04}.{}",
            self.patches_dir(),
            self.stem(),
            self.table_ext()
        )
    }

    /// The instances table: `<stem>.<ext>`, then `<stem>-0001.<ext>`, ... when a fleet fills
    /// more than one part (a part is bounded so that memory is); in the seed layout it hides
    /// under `_patchtrail/` so that the seed's own readers see only their keys.
    pub fn instances_part(&self, part: u32) -> String {
        let name = match part {
            0 => self.stem(),
            n => format!("{}-{n:04}", self.stem()),
        };
        let table = format!("instances/{}/{name}.{}", self.partition, self.table_ext());
        match self.format {
            StoreFormat::Seed => format!("_patchtrail/{table}"),
            _ => table,
        }
    }

    pub fn manifest(&self) -> String {
        let key = format!("runs/{}/{}.json", self.partition, self.run_id);
        match self.format {
            StoreFormat::Seed => format!("_patchtrail/{key}"),
            _ => key,
        }
    }

    /// Whether `key` is an object this run (any attempt of it) may write: a table part or a seed
    /// page under the run's date partition, named after the run.
    pub fn owns(&self, key: &str) -> bool {
        let named_after_run = |name: &str| {
            name.strip_prefix(self.run_id.as_str())
                .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('.'))
        };
        let in_table = |table: &str| {
            key.strip_prefix(table)
                .and_then(|k| k.strip_prefix(self.partition.as_str()))
                .and_then(|k| k.strip_prefix('/'))
                .is_some_and(|name| !name.contains('/') && named_after_run(name))
        };
        if in_table("patches/") || in_table("instances/") || in_table("_patchtrail/instances/") {
            return true;
        }
        key.strip_prefix(self.partition.as_str())
            .and_then(|k| k.strip_prefix("/instanceid="))
            .and_then(|k| k.split_once('/'))
            .is_some_and(|(_, name)| {
                !name.contains('/')
                    && seed_page_tag(name) == Some(seed_run_tag(&self.run_id).as_str())
            })
    }

    /// The seed's page key: `year=/month=/day=/instanceid=<id>/<uuid>`, the uuid derived
    /// (name-based, version 5 layout) from run, instance and page, and its first 8 hex digits
    /// the run's tag (see [`seed_run_tag`]), so that pages can be traced to their run.
    pub fn seed_page(&self, instance_id: &str, page: usize) -> String {
        let name = match self.attempt {
            0 => format!("{}/{instance_id}/{page}", self.run_id),
            n => format!("{}/r{n}/{instance_id}/{page}", self.run_id),
        };
        let uuid = name_uuid(&name);
        format!(
            "{}/instanceid={instance_id}/{}{}",
            self.partition,
            seed_run_tag(&self.run_id),
            &uuid[8..]
        )
    }
}

/// The first 8 hex digits of every seed page patchtrail writes for `run_id`: how a page found
/// without a manifest (an interrupted run's) is told apart from the seed workflow's own random
/// v4 UUIDs (a chance collision is 1 in 2^32 per claimed run).
pub fn seed_run_tag(run_id: &str) -> String {
    hex::encode(&Sha256::digest(format!("patchtrail-run/{run_id}").as_bytes())[..4])
}

/// The run tag of a seed page key (the first 8 hex digits of its file name).
pub fn seed_page_tag(key: &str) -> Option<&str> {
    key.rsplit('/').next().and_then(|name| name.get(..8))
}

/// A UUID (RFC 4122 layout, version 5 bits) derived from a name.
pub fn name_uuid(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn table_keys() {
        let l = RunLayout::new(
            "20260301-123456789012-us-east-1-01",
            at(),
            StoreFormat::Parquet,
        );
        assert_eq!(
            l.patches_part(0),
            "patches/year=2026/month=03/day=01/20260301-123456789012-us-east-1-01-0000.parquet"
        );
        assert_eq!(
            l.instances_part(0),
            "instances/year=2026/month=03/day=01/20260301-123456789012-us-east-1-01.parquet"
        );
        assert_eq!(
            l.instances_part(1),
            "instances/year=2026/month=03/day=01/20260301-123456789012-us-east-1-01-0001.parquet"
        );
        assert_eq!(
            l.manifest(),
            "runs/year=2026/month=03/day=01/20260301-123456789012-us-east-1-01.json"
        );
        let continued = l.clone().with_attempt(2);
        assert_eq!(
            continued.patches_part(0),
            "patches/year=2026/month=03/day=01/20260301-123456789012-us-east-1-01-r002-0000.parquet"
        );
        assert_eq!(
            continued.instances_part(0),
            "instances/year=2026/month=03/day=01/20260301-123456789012-us-east-1-01-r002.parquet"
        );
        assert_eq!(
            continued.instances_part(3),
            "instances/year=2026/month=03/day=01/20260301-123456789012-us-east-1-01-r002-0003.parquet"
        );
        assert_eq!(continued.manifest(), l.manifest(), "one manifest per run");
        for key in [
            l.patches_part(0),
            l.instances_part(1),
            continued.patches_part(0),
            continued.instances_part(2),
        ] {
            assert!(l.owns(&key), "{key}");
        }
        let other = RunLayout::new(
            "20260301-123456789012-us-east-1-02",
            at(),
            StoreFormat::Parquet,
        );
        assert!(!l.owns(&other.patches_part(0)), "another run's part");
        assert!(!l.owns(&l.manifest()), "the manifest is not a data object");
        assert!(
            !l.owns(
                "patches/year=2026/month=03/day=02/20260301-123456789012-us-east-1-01-0000.parquet"
            ),
            "another day"
        );
    }

    #[test]
    fn seed_keys_match_the_seed_pattern() {
        let l = RunLayout::new("r", at(), StoreFormat::Seed);
        let key = l.seed_page("i-0123456789abcdef0", 2);
        let (dir, uuid) = key.rsplit_once('/').expect("a file name");
        assert_eq!(
            dir,
            "year=2026/month=03/day=01/instanceid=i-0123456789abcdef0"
        );
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "5");
        assert_eq!(key, l.seed_page("i-0123456789abcdef0", 2), "deterministic");
        assert_ne!(key, l.seed_page("i-0123456789abcdef0", 3));
        let continued = l
            .clone()
            .with_attempt(1)
            .seed_page("i-0123456789abcdef0", 2);
        assert_ne!(key, continued, "a continuation writes its own pages");
        assert_eq!(
            seed_page_tag(&continued),
            seed_page_tag(&key),
            "of the same run"
        );
        assert_eq!(seed_page_tag(&key), Some(seed_run_tag("r").as_str()));
        assert_ne!(seed_run_tag("r"), seed_run_tag("s"));
        assert!(l.manifest().starts_with("_patchtrail/runs/"));
        assert!(l.owns(&key) && l.owns(&continued));
        assert!(!l.owns(
            &RunLayout::new("s", at(), StoreFormat::Seed).seed_page("i-0123456789abcdef0", 0)
        ));
        assert!(l.instances_part(0).starts_with("_patchtrail/instances/"));
    }

    #[test]
    fn run_id_shapes() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        assert!(is_run_id(&run_id(d, "123456789012", "ap-northeast-1", 3)));
        assert!(is_run_id(&run_id(d, "123456789012", "us-east-1", 120)));
        for bad in [
            "",
            "20260301-123456789012-us-east-1",
            "20260301-12345-us-east-1-01",
            "20260301-123456789012-../x-01",
            "2026031-123456789012-us-east-1-01",
            "20260301-123456789012-us-east-1-01/..",
        ] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }

    #[test]
    fn run_ids_sort_by_day() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        assert_eq!(
            run_id(d, "123456789012", "ap-northeast-1", 3),
            "20260301-123456789012-ap-northeast-1-03"
        );
        assert!(
            run_id(d, "123456789012", "ap-northeast-1", 3).starts_with(&run_id_stem(
                d,
                "123456789012",
                "ap-northeast-1"
            ))
        );
    }
}
