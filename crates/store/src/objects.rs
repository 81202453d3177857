//! The object primitives every read and write of a store goes through.
//!
//! Two rules live here so that no caller can forget them (docs/commit-protocol.md):
//! - **Create-only writes answer by content.** An "already exists" answer is compared with what
//!   was being written, on every try, the first included: object_store retries a PUT whose answer
//!   was lost, and S3 then refuses the retry because the first try *did* create the object. Equal
//!   bytes mean the write is ours; other bytes are handed back to the caller, who knows what they
//!   mean (a lost race, a peer's commit of the same run, damage).
//! - **Listings skip what they cannot name.** A foreign object whose name object_store cannot
//!   represent (a control character, say) is left out and noted, rather than failing the listing
//!   and with it every report.
//!
//! Local folders are written by [`crate::local`] (synced, create-only without hard links too);
//! S3 and memory stores by object_store.

use crate::chain::CREATE_ONLY_PROBE_PREFIX;
use crate::local::{self, CreateMechanism, Placed};
use crate::{Store, StoreError, StoreKind};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutOptions};
use std::path::PathBuf;

/// Objects fetched at once when reading many.
pub(crate) const FETCH_CONCURRENCY: usize = 16;
/// Tries of one write that fails for a transient reason (a 503, a timeout, a conflicting
/// conditional write in flight), on top of object_store's own retries.
const WRITE_ATTEMPTS: u32 = 6;

/// What a create-only write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The object now holds these bytes: this write made it, or an earlier try of it did.
    Written,
    /// The object holds other bytes, which it keeps.
    Exists(Bytes),
}

/// What [`Store::probe`] found.
#[derive(Debug, Clone)]
pub struct StoreProbe {
    /// Runs the store names.
    pub runs: usize,
    /// How it makes create-only writes.
    pub create_only: String,
}

/// One object of a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

impl Store {
    /// The file behind `key` in a local store.
    fn file(&self, key: &str) -> Option<PathBuf> {
        match self.kind() {
            StoreKind::Local(dir) => Some(dir.join(key)),
            _ => None,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let result = self
            .objects
            .get(&self.path(key))
            .await
            .map_err(|e| StoreError::classify(self.url(), "read", key, e))?;
        result
            .bytes()
            .await
            .map_err(|e| StoreError::classify(self.url(), "read", key, e))
    }

    /// The object's bytes, or `None` when it is absent.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads several objects at once, in the order given.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Bytes>, StoreError> {
        stream::iter(keys)
            .map(|k| self.get(k))
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await
    }

    /// The size of an object, or `None` when it is absent.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.objects.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::classify(self.url(), "read", key, e)),
        }
    }

    /// Writes `key`, replacing what it held: only for objects that are shortcuts, never trusted
    /// alone (the chain-head hint) or probes. History is written with [`Store::create`].
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        if let Some(file) = self.file(key) {
            return blocking(move || local::overwrite(&file, &bytes))
                .await
                .map_err(|e| self.io_error("write", key, e));
        }
        self.objects
            .put(&self.path(key), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| StoreError::classify(self.url(), "write", key, e))
    }

    /// Creates `key` holding `bytes` unless it exists; see the module docs for the answer.
    pub async fn create(&self, key: &str, bytes: Vec<u8>) -> Result<Created, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let retry = match self.try_create(key, &bytes).await {
                Ok(true) => return Ok(Created::Written),
                Ok(false) => match self.get_opt(key).await? {
                    Some(found) if found[..] == bytes[..] => return Ok(Created::Written),
                    Some(found) => return Ok(Created::Exists(found)),
                    // Refused, yet absent: a conflicting conditional write still in flight (S3's
                    // 409 ConditionalRequestConflict) that did not complete. Try again.
                    None => StoreError::Contended {
                        url: self.url().to_string(),
                        what: format!("the create-only object {key}"),
                    },
                },
                Err(e) if e.is_retryable() => e,
                Err(e) => return Err(e),
            };
            if attempt >= WRITE_ATTEMPTS {
                // Every answer lost: the write may have landed all the same (S3 applied it, then
                // the answer failed each time). A last read tells, so that a landed chain entry is
                // reported committed rather than failed (and not collected again as a second run).
                return match self.get_opt(key).await {
                    Ok(Some(found)) if found[..] == bytes[..] => Ok(Created::Written),
                    _ => Err(retry),
                };
            }
            tracing::debug!(key, attempt, error = %retry, "create-only write failed; trying again");
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5))).await;
        }
    }

    /// One create-only write: `Ok(false)` when the name is taken.
    async fn try_create(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        if let Some(file) = self.file(key) {
            let bytes = bytes.to_vec();
            return match blocking(move || local::create(&file, &bytes)).await {
                Ok(Placed::Created(_)) => Ok(true),
                Ok(Placed::Exists) => Ok(false),
                Err(e) => Err(self.io_error("create", key, e)),
            };
        }
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .objects
            .put_opts(&self.path(key), bytes.to_vec().into(), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(StoreError::classify(self.url(), "create", key, e)),
        }
    }

    /// Creates `key` like [`Store::create`], then reads it back: a store that emulates
    /// `If-None-Match` by checking first and writing after can let a second writer's create
    /// through and replace the first one's bytes. The chain entries are created this way, so a
    /// writer whose entry was replaced learns that it lost the place (docs/commit-protocol.md,
    /// R1). It narrows the window, not closes it: the probe refuses such stores, and `verify`
    /// names two runs that claim one place.
    pub(crate) async fn create_confirmed(
        &self,
        key: &str,
        bytes: Vec<u8>,
    ) -> Result<Created, StoreError> {
        match self.create(key, bytes.clone()).await? {
            Created::Written => match self.get_opt(key).await? {
                Some(found) if found[..] == bytes[..] => Ok(Created::Written),
                Some(found) => {
                    tracing::warn!(
                        key,
                        "a create this process made was replaced by another writer's: the store does not honour create-only writes"
                    );
                    Ok(Created::Exists(found))
                }
                None => Err(self.damaged(format!(
                    "{key} was created and then vanished: another writer or a lifecycle rule removes objects under _patchtrail/"
                ))),
            },
            found => Ok(found),
        }
    }

    /// How this store makes create-only writes: a create of an existing object must be refused.
    /// A store that lets it through (some gateways and older S3 look-alikes ignore
    /// `If-None-Match`, others check for the object and then write it, or honour the condition
    /// on some keys only) cannot hold patchtrail's history: two runs could take one place in the
    /// commit chain and one of them would be lost. So the probe works where commits do, in the
    /// chain's own folder, on a fresh key: two creates of it race (exactly one may succeed), then
    /// a third create must be refused. The probe objects are removed where the store allows it
    /// (a bucket whose policy or Object Lock keeps them holds a few bytes per probe; no reader
    /// takes them for entries).
    pub async fn probe_create_only(&self) -> Result<String, StoreError> {
        let mechanism = match self.kind() {
            StoreKind::Local(dir) => Some(self.local_mechanism(dir).await?),
            _ => None,
        };
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let key = format!(
            "{CREATE_ONLY_PROBE_PREFIX}{nanos}-{}.json",
            std::process::id()
        );
        // Answered by content, as every create is: a lost answer's retry finds its own bytes.
        let first = b"patchtrail create-only probe: first of a racing pair".to_vec();
        let second = b"patchtrail create-only probe: second of a racing pair".to_vec();
        let (a, b) = tokio::join!(self.create(&key, first), self.create(&key, second));
        let won = [a?, b?].iter().filter(|c| **c == Created::Written).count();
        let refused = b"patchtrail create-only probe: a create that must be refused".to_vec();
        let third = self.create(&key, refused).await? == Created::Written;
        if let Err(e) = self.delete(&key).await {
            tracing::debug!(key, error = %e, "could not remove the create-only probe");
        }
        if won != 1 || third {
            return Err(StoreError::NoCreateOnly {
                url: self.url().to_string(),
            });
        }
        Ok(mechanism.map_or_else(
            || "conditional writes (If-None-Match: *)".into(),
            |m| m.to_string(),
        ))
    }

    /// How a folder makes create-only writes: a probe object of its own, removed after.
    async fn local_mechanism(&self, dir: &std::path::Path) -> Result<CreateMechanism, StoreError> {
        let key = format!("_patchtrail/probes/create-only-{}", std::process::id());
        let file = dir.join(&key);
        let placed = blocking(move || local::create(&file, b"1"))
            .await
            .map_err(|e| self.io_error("create", &key, e));
        let _ = self.delete(&key).await;
        match placed? {
            Placed::Created(mechanism) => Ok(mechanism),
            Placed::Exists => Err(StoreError::Contended {
                url: self.url().to_string(),
                what: format!("the probe object {key}"),
            }),
        }
    }

    /// Whether every create is whole the moment its name appears (S3's PutObject, a folder's
    /// hard link or rename without replace): then no crash can leave a torn object, and a torn
    /// chain entry is damage, not a crash's leftover. Only a folder that creates exclusively
    /// (`O_CREAT | O_EXCL`, then the bytes) can be caught half-written.
    pub async fn creates_are_atomic(&self) -> Result<bool, StoreError> {
        Ok(match self.kind() {
            StoreKind::Local(dir) => {
                self.local_mechanism(dir).await? != CreateMechanism::ExclusiveCreate
            }
            _ => true,
        })
    }

    /// What `doctor` checks of a store before a collect: that it lists, that an object written
    /// reads back the same, and how it makes create-only writes ([`Store::probe_create_only`]).
    pub async fn probe(&self) -> Result<StoreProbe, StoreError> {
        let (refs, _) = self.run_refs().await?;
        let key = "_patchtrail/doctor-probe";
        let body = format!("patchtrail doctor probe {}", Utc::now().to_rfc3339()).into_bytes();
        self.put(key, body.clone()).await?;
        if self.get(key).await?[..] != body[..] {
            return Err(StoreError::Object {
                url: self.url().to_string(),
                operation: "read",
                key: key.into(),
                reason: "the probe read back differs from what was written".into(),
            });
        }
        Ok(StoreProbe {
            runs: refs.len(),
            create_only: self.probe_create_only().await?,
        })
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects
            .delete(&self.path(key))
            .await
            .map_err(|e| StoreError::classify(self.url(), "delete", key, e))
    }

    /// Every object under `prefix` (relative to the root), from the first key after `offset`
    /// when given. Names object_store cannot represent are noted (see [`Store::skipped_names`]):
    /// a folder is walked by [`local::list`], which goes past them.
    pub async fn list(
        &self,
        prefix: &str,
        offset: Option<&str>,
    ) -> Result<Vec<Listed>, StoreError> {
        if let StoreKind::Local(dir) = self.kind() {
            let (dir, from, after) = (dir.clone(), prefix.to_string(), offset.map(str::to_string));
            let (found, skipped) = blocking(move || local::list(&dir, &from, after.as_deref()))
                .await
                .map_err(|e| self.io_error("list", prefix, e))?;
            for name in skipped {
                self.note_skipped(name);
            }
            return Ok(found
                .into_iter()
                .map(|e| Listed {
                    key: e.key,
                    size: e.size,
                    modified: e.modified.into(),
                })
                .collect());
        }
        let path = self.path(prefix);
        let mut found = match offset {
            Some(o) => self.objects.list_with_offset(Some(&path), &self.path(o)),
            None => self.objects.list(Some(&path)),
        };
        let mut out = Vec::new();
        while let Some(item) = found.next().await {
            match item {
                Ok(ObjectMeta {
                    location,
                    size,
                    last_modified,
                    ..
                }) => out.push(Listed {
                    key: self.key_of(&location),
                    size,
                    modified: last_modified,
                }),
                Err(object_store::Error::InvalidPath { source }) => {
                    self.note_skipped(source.to_string())
                }
                Err(e) => return Err(StoreError::classify(self.url(), "list", prefix, e)),
            }
        }
        Ok(out)
    }

    /// Keys and sizes of every object under `prefix`.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self
            .list(prefix, None)
            .await?
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect())
    }

    /// Keys, sizes and write times of every object under `prefix`.
    pub async fn list_meta(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, u64, DateTime<Utc>)>, StoreError> {
        Ok(self
            .list(prefix, None)
            .await?
            .into_iter()
            .map(|o| (o.key, o.size, o.modified))
            .collect())
    }

    /// Objects of the seed layout (`year=…/month=…/day=…/instanceid=…/…`) at the root, with
    /// their write times; one listing of the root's folders first, so other layouts pay nothing.
    pub async fn seed_layout_pages(&self) -> Result<Vec<(String, u64, DateTime<Utc>)>, StoreError> {
        if let StoreKind::Local(dir) = self.kind() {
            let years: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| self.io_error("list", "", e))?
                .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_string))
                .filter(|name| name.starts_with("year="))
                .collect();
            let mut out = Vec::new();
            for year in years {
                out.extend(self.list_meta(&format!("{year}/")).await?);
            }
            return Ok(out);
        }
        let top = self
            .objects
            .list_with_delimiter(Some(&self.root))
            .await
            .map_err(|e| StoreError::classify(self.url(), "list", "", e))?;
        let mut out = Vec::new();
        for dir in top.common_prefixes {
            let key = self.key_of(&dir);
            if key.starts_with("year=") {
                out.extend(self.list_meta(&key).await?);
            }
        }
        Ok(out)
    }

    fn note_skipped(&self, why: String) {
        tracing::debug!(%why, "skipped an object whose name cannot be read");
        if let Ok(mut skipped) = self.skipped.lock() {
            skipped.insert(why);
        }
    }

    /// Objects that listings left out because their names cannot be represented (not
    /// patchtrail's: it writes none), one line each.
    pub fn skipped_names(&self) -> Vec<String> {
        self.skipped
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn io_error(&self, operation: &'static str, key: &str, e: std::io::Error) -> StoreError {
        if matches!(
            e.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ) {
            return StoreError::LocalFolder {
                path: self.url().to_string(),
                source: e,
            };
        }
        StoreError::Object {
            url: self.url().to_string(),
            operation,
            key: key.to_string(),
            reason: e.to_string(),
        }
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}
