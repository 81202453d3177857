//! The committed history: the run manifests in the store, oldest first.

use crate::layout::MANIFEST_PREFIXES;
use crate::{Store, StoreError};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use patchtrail_model::RunManifest;
use sha2::{Digest, Sha256};

/// A manifest as stored: its key, the SHA-256 of its bytes, and its content.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub key: String,
    pub sha256: String,
    pub manifest: RunManifest,
}

/// What reading the history found besides committed runs.
#[derive(Debug, Default)]
pub struct History {
    pub runs: Vec<StoredManifest>,
    /// Objects under a manifest folder that are not valid manifests: `(key, why)`.
    pub unreadable: Vec<(String, String)>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Store {
    /// Keys (relative to the root) of every object under `prefix`.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let path = self.path(prefix);
        let found: Vec<object_store::ObjectMeta> = self
            .objects
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|e| StoreError::classify(self.url(), "list", prefix, e))?;
        Ok(found.into_iter().map(|m| (self.key_of(&m.location), m.size)).collect())
    }

    pub async fn get(&self, key: &str) -> Result<bytes::Bytes, StoreError> {
        let result = self.objects.get(&self.path(key)).await.map_err(|e| StoreError::classify(self.url(), "read", key, e))?;
        result.bytes().await.map_err(|e| StoreError::classify(self.url(), "read", key, e))
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.objects
            .put(&self.path(key), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| StoreError::classify(self.url(), "write", key, e))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.delete(&self.path(key)).await.map_err(|e| StoreError::classify(self.url(), "delete", key, e))
    }

    /// Every committed run, oldest first (by snapshot time, then run id). Objects in the
    /// manifest folders that do not parse are reported, not fatal.
    pub async fn history(&self) -> Result<History, StoreError> {
        let mut history = History::default();
        for prefix in MANIFEST_PREFIXES {
            for (key, _) in self.list_keys(prefix).await? {
                if !key.ends_with(".json") {
                    history.unreadable.push((key, "not a manifest (.json) file".into()));
                    continue;
                }
                let bytes = self.get(&key).await?;
                match serde_json::from_slice::<RunManifest>(&bytes) {
                    Ok(manifest) => history.runs.push(StoredManifest { sha256: sha256_hex(&bytes), key, manifest }),
                    Err(e) => history.unreadable.push((key, format!("not a patchtrail manifest: {e}"))),
                }
            }
        }
        history.runs.sort_by(|a, b| {
            (a.manifest.snapshot_time, &a.manifest.run_id).cmp(&(b.manifest.snapshot_time, &b.manifest.run_id))
        });
        Ok(history)
    }
}
