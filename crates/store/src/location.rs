//! Opening a store from its URL: a plain path, `file://`, `s3://bucket/prefix` or `memory://`.
//!
//! S3 takes its region, credentials and endpoint from the SDK's resolved configuration (profiles,
//! SSO, IMDS, `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` included) through a small credential
//! adapter, so tests reach moto the way users would.

use crate::StoreError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::service_config::ServiceConfigKey;
use object_store::aws::{AmazonS3Builder, AwsCredential, Checksum};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{CredentialProvider, ObjectStore};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Where the history lives.
#[derive(Clone)]
pub struct Store {
    pub(crate) objects: Arc<dyn ObjectStore>,
    pub(crate) root: Path,
    url: String,
    kind: StoreKind,
    /// How to reach an S3 store's bucket outside object_store (its settings, for `doctor`).
    pub(crate) s3: Option<S3Endpoint>,
    /// Names listings left out (see `objects`), shared by the clones of one store.
    pub(crate) skipped: Arc<Mutex<BTreeSet<String>>>,
}

/// Region, endpoint and credentials of an S3 store, kept for bucket-level requests.
#[derive(Clone)]
pub(crate) struct S3Endpoint {
    pub(crate) region: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) credentials: Option<Arc<SdkCredentials>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
    Memory,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

/// The seed's Scheduler input, `{"s3_bucket": "bucket/", "s3_path": "prefix"}`, as a store URL.
pub fn seed_input_url(s3_bucket: &str, s3_path: &str) -> Result<String, StoreError> {
    let bucket = s3_bucket
        .trim()
        .trim_end_matches('/')
        .trim_start_matches("s3://");
    if bucket.is_empty() || bucket.contains('/') {
        return Err(StoreError::BadUrl {
            url: s3_bucket.to_string(),
            reason: "s3_bucket must be a bucket name, like \"my-bucket/\"".into(),
        });
    }
    let path = s3_path.trim().trim_matches('/');
    Ok(if path.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{path}")
    })
}

/// The AWS settings an S3 store needs, taken from the SDK's resolved configuration.
#[derive(Clone, Default)]
pub struct AwsAccess {
    pub region: Option<String>,
    pub credentials: Option<SharedCredentialsProvider>,
    /// An S3 endpoint other than AWS's (moto, MinIO, a VPC endpoint).
    pub endpoint: Option<String>,
}

impl AwsAccess {
    /// Region, credentials and S3 endpoint as the SDK resolved them: the S3 endpoint comes from
    /// `AWS_ENDPOINT_URL_S3`, the profile's `services` section, or the global `AWS_ENDPOINT_URL`,
    /// exactly as an S3 client built from this config would see it.
    pub fn from_sdk_config(config: &aws_types::SdkConfig) -> AwsAccess {
        let s3_specific = config.service_config().and_then(|c| {
            let key = ServiceConfigKey::builder()
                .service_id("S3")
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .ok()?;
            c.load_config(key)
        });
        AwsAccess {
            region: config.region().map(|r| r.to_string()),
            credentials: config.credentials_provider(),
            endpoint: s3_specific
                .or_else(|| config.endpoint_url().map(str::to_string))
                .filter(|e| !e.trim().is_empty()),
        }
    }
}

impl AwsAccess {
    /// The region of an S3 store's bucket: `explicit` when given; otherwise, on AWS's own
    /// endpoints, looked up from the bucket (a HEAD answered with `x-amz-bucket-region`), so a
    /// bucket in any region works without flags. Custom endpoints keep the configured region.
    pub async fn for_bucket_of(mut self, url: &str, explicit: Option<&str>) -> AwsAccess {
        if let Some(region) = explicit {
            self.region = Some(region.to_string());
            return self;
        }
        let Some(bucket) = url
            .strip_prefix("s3://")
            .and_then(|r| r.split('/').next())
            .filter(|b| !b.is_empty())
        else {
            return self;
        };
        if self.endpoint.is_some() {
            return self;
        }
        let options = object_store::ClientOptions::new();
        let lookup = object_store::aws::resolve_bucket_region(bucket, &options);
        match tokio::time::timeout(Duration::from_secs(10), lookup).await {
            Ok(Ok(region)) => {
                if self.region.as_deref() != Some(region.as_str()) {
                    tracing::info!(
                        bucket,
                        region,
                        "the bucket lives in another region than the configured one; using its own"
                    );
                }
                self.region = Some(region);
            }
            Ok(Err(e)) => {
                tracing::debug!(bucket, error = %e, "could not look up the bucket's region; using the configured one")
            }
            Err(_) => tracing::debug!(
                bucket,
                "looking up the bucket's region timed out; using the configured one"
            ),
        }
        self
    }
}

impl Store {
    /// Opens `url`; local folders are created if missing.
    pub fn open(url: &str, aws: &AwsAccess) -> Result<Store, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name after s3://"));
            }
            let prefix = prefix.trim_matches('/').to_string();
            // A checksum on every upload: buckets with Object Lock retention refuse puts without one.
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_checksum_algorithm(Checksum::SHA256);
            let region = aws
                .region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .unwrap_or_else(|| "us-east-1".into());
            builder = builder.with_region(&region);
            if let Some(endpoint) = &aws.endpoint {
                builder = builder
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint);
            }
            let credentials = aws
                .credentials
                .as_ref()
                .map(|provider| Arc::new(SdkCredentials::new(provider.clone())));
            if let Some(credentials) = &credentials {
                builder = builder.with_credentials(credentials.clone());
            }
            let objects = builder.build().map_err(|e| bad(&e.to_string()))?;
            return Ok(Store {
                objects: Arc::new(objects),
                root: Path::from(prefix.as_str()),
                url: url.to_string(),
                kind: StoreKind::S3 {
                    bucket: bucket.to_string(),
                    prefix,
                },
                s3: Some(S3Endpoint {
                    region,
                    endpoint: aws.endpoint.clone(),
                    credentials,
                }),
                skipped: Arc::default(),
            });
        }
        if url == "memory://" || url.starts_with("memory://") {
            return Ok(Store {
                objects: Arc::new(InMemory::new()),
                root: Path::default(),
                url: url.to_string(),
                kind: StoreKind::Memory,
                s3: None,
                skipped: Arc::default(),
            });
        }
        if let Some((scheme, _)) = url.split_once("://")
            && scheme != "file"
        {
            return Err(bad(&format!("the scheme '{scheme}://' is not supported")));
        }
        let dir = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::LocalFolder {
            path: dir.display().to_string(),
            source,
        })?;
        let dir = dir
            .canonicalize()
            .map_err(|source| StoreError::LocalFolder {
                path: dir.display().to_string(),
                source,
            })?;
        let objects =
            LocalFileSystem::new_with_prefix(&dir).map_err(|e| StoreError::LocalFolder {
                path: dir.display().to_string(),
                source: std::io::Error::other(e),
            })?;
        Ok(Store {
            objects: Arc::new(objects),
            root: Path::default(),
            url: dir.display().to_string(),
            kind: StoreKind::Local(dir),
            s3: None,
            skipped: Arc::default(),
        })
    }

    /// The store as the user should see it (absolute folder, or the URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kind(&self) -> &StoreKind {
        &self.kind
    }

    /// The object store and the root path inside it, for readers such as DataFusion.
    pub fn object_store(&self) -> (Arc<dyn ObjectStore>, Path) {
        (self.objects.clone(), self.root.clone())
    }

    /// Fails early, with the cause named, when the store cannot take a run: a folder that cannot
    /// be written, a bucket that does not exist or cannot be listed, a store without create-only
    /// writes. Returns how it makes them.
    pub async fn check_writable(&self) -> Result<String, StoreError> {
        if let StoreKind::S3 { .. } = &self.kind {
            self.list_keys("runs/").await?;
        }
        self.probe_create_only().await
    }

    /// The full object path of a key relative to the root.
    pub fn path(&self, key: &str) -> Path {
        let mut parts: Vec<String> = self.root.parts().map(|p| p.as_ref().to_string()).collect();
        parts.extend(key.split('/').filter(|s| !s.is_empty()).map(str::to_string));
        Path::from_iter(parts)
    }

    /// The key relative to the root of a full object path.
    pub(crate) fn key_of(&self, path: &Path) -> String {
        let root = self.root.as_ref();
        let full = path.as_ref();
        if root.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(root)
                .map(|k| k.trim_start_matches('/').to_string())
                .unwrap_or_else(|| full.to_string())
        }
    }
}

/// Feeds credentials from the AWS SDK's provider chain to object_store, cached until near expiry.
#[derive(Debug)]
pub(crate) struct SdkCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl SdkCredentials {
    fn new(provider: SharedCredentialsProvider) -> Self {
        SdkCredentials {
            provider,
            cached: Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let fresh_until = SystemTime::now() + Duration::from_secs(300);
        if let Some((cred, expiry)) = self.cached.lock().map_err(|_| poisoned())?.as_ref()
            && expiry.is_none_or(|e| e > fresh_until)
        {
            return Ok(cred.clone());
        }
        let c = self.provider.provide_credentials().await.map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: format!("no AWS credentials: {e}. Configure them (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)").into(),
        })?;
        let cred = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        });
        *self.cached.lock().map_err(|_| poisoned())? = Some((cred.clone(), c.expiry()));
        Ok(cred)
    }
}

fn poisoned() -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: "credential cache lock poisoned".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_input_becomes_a_store_url() {
        assert_eq!(
            seed_input_url("my-bucket/", "patch-history")
                .ok()
                .as_deref(),
            Some("s3://my-bucket/patch-history")
        );
        assert_eq!(
            seed_input_url("my-bucket", "/a/b/").ok().as_deref(),
            Some("s3://my-bucket/a/b")
        );
        assert_eq!(seed_input_url("b/", "").ok().as_deref(), Some("s3://b"));
        assert!(seed_input_url("", "p").is_err());
        assert!(seed_input_url("b/c", "p").is_err());
    }

    #[test]
    fn urls_are_checked() {
        let access = AwsAccess::default();
        assert!(matches!(
            Store::open("ftp://x", &access),
            Err(StoreError::BadUrl { .. })
        ));
        assert!(matches!(
            Store::open("s3://", &access),
            Err(StoreError::BadUrl { .. })
        ));
        let s3 = Store::open("s3://bucket/a/b/", &access).expect("s3 url");
        assert_eq!(
            s3.kind(),
            &StoreKind::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(s3.path("runs/x.json").as_ref(), "a/b/runs/x.json");
        assert_eq!(s3.key_of(&s3.path("runs/x.json")), "runs/x.json");
    }
}
