//! The protection an S3 bucket gives the history beyond patchtrail's own create-only writes:
//! versioning (an overwritten or deleted object can be recovered) and Object Lock (it cannot be
//! deleted at all). object_store has no call for bucket settings, so these two GETs are signed
//! with its SigV4 authorizer and sent through its HTTP client, with the store's own region,
//! endpoint and credentials. Wire shapes: S3 API reference, `GetBucketVersioning`
//! (`<VersioningConfiguration><Status>Enabled|Suspended</Status>`, no `Status` when never
//! enabled) and `GetObjectLockConfiguration` (`<ObjectLockEnabled>Enabled</ObjectLockEnabled>`,
//! or the error `ObjectLockConfigurationNotFoundError` when the bucket has none).

use crate::chain::{CHAIN_PREFIX, CREATE_ONLY_PROBE_PREFIX};
use crate::location::S3Endpoint;
use crate::{Store, StoreError, StoreKind};
use object_store::CredentialProvider;
use object_store::aws::AwsAuthorizer;
use object_store::client::{HttpConnector, HttpRequest, ReqwestConnector};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the bucket of an S3 store does to keep objects from being overwritten or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketProtection {
    /// `Enabled`, `Suspended`, or `Disabled` (never enabled).
    pub versioning: String,
    pub object_lock: bool,
}

impl BucketProtection {
    /// What an operator keeping audit evidence should change, if anything.
    pub fn advice(&self) -> Option<&'static str> {
        match (self.versioning.as_str(), self.object_lock) {
            (_, true) => None,
            ("Enabled", false) => Some(
                "versioning keeps overwritten or deleted objects recoverable; for evidence that cannot be deleted, use a bucket with Object Lock (it can only be turned on for new buckets or through AWS support)",
            ),
            _ => Some(
                "enable versioning on the bucket (aws s3api put-bucket-versioning --versioning-configuration Status=Enabled) so that no one can overwrite or delete history unnoticed; Object Lock makes it undeletable",
            ),
        }
    }
}

impl Store {
    /// The bucket's versioning and Object Lock status; `None` for stores that are not on S3.
    pub async fn bucket_protection(&self) -> Result<Option<BucketProtection>, StoreError> {
        let (StoreKind::S3 { bucket, .. }, Some(s3)) = (self.kind(), &self.s3) else {
            return Ok(None);
        };
        let versioning = self.bucket_get(s3, bucket, "versioning").await?;
        let versioning = match versioning {
            Some(body) => element(&body, "Status").unwrap_or_else(|| "Disabled".into()),
            None => "Disabled".into(),
        };
        let object_lock = self
            .bucket_get(s3, bucket, "object-lock")
            .await?
            .and_then(|body| element(&body, "ObjectLockEnabled"))
            .is_some_and(|v| v == "Enabled");
        Ok(Some(BucketProtection {
            versioning,
            object_lock,
        }))
    }

    /// In a bucket that keeps versions, the objects of history that were deleted (a delete
    /// marker hides them) or overwritten (more than one version): the chain entries and the run
    /// manifests, which patchtrail creates once and never deletes. `(key, what happened and how
    /// to see or undo it)`; empty when the store is not a versioned bucket. Wire shape: S3 API
    /// reference, `ListObjectVersions` (`<Version>`/`<DeleteMarker>` with `<Key>`, `<VersionId>`,
    /// `<IsLatest>`; `<IsTruncated>`, `<NextKeyMarker>`, `<NextVersionIdMarker>`).
    pub async fn rewritten_history(&self) -> Result<Vec<(String, String)>, StoreError> {
        let (StoreKind::S3 { bucket, prefix }, Some(s3)) = (self.kind(), &self.s3) else {
            return Ok(Vec::new());
        };
        let versioned = self
            .bucket_get(s3, bucket, "versioning")
            .await?
            .and_then(|body| element(&body, "Status"))
            .is_some();
        if !versioned {
            return Ok(Vec::new());
        }
        let root = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let mut found = Vec::new();
        for under in [CHAIN_PREFIX, "runs/", "_patchtrail/runs/"] {
            let mut keys: BTreeMap<String, KeyVersions> = BTreeMap::new();
            let mut marker: Option<(String, String)> = None;
            loop {
                let mut sub = format!("versions&prefix={}", uri_encode(&format!("{root}{under}")));
                if let Some((key, version)) = &marker {
                    sub.push_str(&format!(
                        "&key-marker={}&version-id-marker={}",
                        uri_encode(key),
                        uri_encode(version)
                    ));
                }
                let body = self.bucket_get(s3, bucket, &sub).await?.unwrap_or_default();
                for (tag, deleted) in [("Version", false), ("DeleteMarker", true)] {
                    for block in blocks(&body, tag) {
                        let Some(key) = element(block, "Key") else {
                            continue;
                        };
                        let k = keys.entry(key).or_default();
                        let version = element(block, "VersionId").unwrap_or_default();
                        let latest = element(block, "IsLatest").as_deref() == Some("true");
                        if deleted {
                            k.markers.push(version.clone());
                            k.latest_marker |= latest;
                        } else {
                            k.versions += 1;
                        }
                    }
                }
                if element(&body, "IsTruncated").as_deref() != Some("true") {
                    break;
                }
                match (
                    element(&body, "NextKeyMarker"),
                    element(&body, "NextVersionIdMarker"),
                ) {
                    (Some(k), Some(v)) => marker = Some((k, v)),
                    _ => break,
                }
            }
            for (key, k) in keys {
                let key = key.strip_prefix(&root).unwrap_or(&key).to_string();
                if key.starts_with(CREATE_ONLY_PROBE_PREFIX) {
                    continue; // created and deleted by every probe
                }
                if k.latest_marker {
                    let marker = k.markers.first().cloned().unwrap_or_default();
                    found.push((key.clone(), format!(
                        "was deleted: a delete marker hides its {} version(s); the bucket keeps them (undo: aws s3api delete-object --bucket {bucket} --key {root}{key} --version-id {marker})",
                        k.versions
                    )));
                } else if k.versions > 1 || !k.markers.is_empty() {
                    found.push((key.clone(), format!(
                        "was overwritten or deleted and written again ({} versions, {} delete marker(s)): the one in force may not be the one committed (see: aws s3api list-object-versions --bucket {bucket} --prefix {root}{key})",
                        k.versions,
                        k.markers.len()
                    )));
                }
            }
        }
        Ok(found)
    }

    /// A signed `GET /?{sub}` on the bucket: the body, or `None` when S3 answers that the
    /// bucket has no such configuration.
    async fn bucket_get(
        &self,
        s3: &S3Endpoint,
        bucket: &str,
        sub: &str,
    ) -> Result<Option<String>, StoreError> {
        let failed = |reason: String| StoreError::Object {
            url: self.url().to_string(),
            operation: "read the settings of",
            key: format!("the bucket ({sub})"),
            reason,
        };
        let url = match &s3.endpoint {
            Some(endpoint) => format!("{}/{bucket}?{sub}", endpoint.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{}.amazonaws.com/?{sub}", s3.region),
        };
        let mut request: HttpRequest = http::Request::get(url.as_str())
            .body(Vec::<u8>::new().into())
            .map_err(|e| failed(e.to_string()))?;
        if let Some(credentials) = &s3.credentials {
            let credential = credentials
                .get_credential()
                .await
                .map_err(|e| failed(e.to_string()))?;
            AwsAuthorizer::new(&credential, "s3", &s3.region).authorize(&mut request, None);
        }
        let client = ReqwestConnector::default()
            .connect(&object_store::ClientOptions::new().with_allow_http(true))
            .map_err(|e| failed(e.to_string()))?;
        let response = client
            .execute(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let body = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            return Ok(Some(body));
        }
        let code = element(&body, "Code").unwrap_or_else(|| status.to_string());
        match code.as_str() {
            "ObjectLockConfigurationNotFoundError" => Ok(None),
            "NoSuchBucket" => Err(StoreError::NoSuchBucket {
                url: self.url().to_string(),
            }),
            "AccessDenied" => Err(failed(format!(
                "access denied: allow s3:{} on the bucket",
                match sub {
                    "versioning" => "GetBucketVersioning",
                    "object-lock" => "GetBucketObjectLockConfiguration",
                    _ => "ListBucketVersions",
                }
            ))),
            _ => Err(failed(code)),
        }
    }
}

/// A key's history as `ListObjectVersions` gives it.
#[derive(Default)]
struct KeyVersions {
    versions: usize,
    /// Version ids of its delete markers, newest first.
    markers: Vec<String>,
    latest_marker: bool,
}

/// The contents of every `<name>…</name>` in an S3 XML answer.
fn blocks<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// Percent-encodes a query value as SigV4 wants it (everything but `A-Z a-z 0-9 - _ . ~`).
fn uri_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of the first `<name>…</name>` in an S3 XML answer (they are flat and unambiguous).
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::element;

    #[test]
    fn reads_the_elements_s3_documents() {
        // The S3 API reference's own GetBucketVersioning response example.
        let versioning = r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Status>Enabled</Status>
  <MfaDelete>Disabled</MfaDelete>
</VersioningConfiguration>"#;
        assert_eq!(element(versioning, "Status").as_deref(), Some("Enabled"));
        assert_eq!(element(versioning, "ObjectLockEnabled"), None);
        let never = r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>"#;
        assert_eq!(element(never, "Status"), None);
    }

    #[test]
    fn reads_every_version_of_a_listing() {
        // Shaped after the S3 API reference's ListObjectVersions response example.
        let listing = r#"<ListVersionsResult><Name>bucket</Name><Prefix>my</Prefix>
  <KeyMarker/><VersionIdMarker/><MaxKeys>5</MaxKeys><IsTruncated>false</IsTruncated>
  <Version><Key>my-image.jpg</Key><VersionId>3/L4kqtJl40Nr8X8gdRQBpUMLUo</VersionId>
    <IsLatest>true</IsLatest><Size>434234</Size></Version>
  <DeleteMarker><Key>my-second-image.jpg</Key><VersionId>03jpff543dhffds434rfdsFDN943fdsFkdmqnh892</VersionId>
    <IsLatest>true</IsLatest></DeleteMarker>
  <Version><Key>my-second-image.jpg</Key><VersionId>QUpfdndhfd8438MNFDN93jdnJFkdmqnh893</VersionId>
    <IsLatest>false</IsLatest><Size>166434</Size></Version>
</ListVersionsResult>"#;
        let versions = super::blocks(listing, "Version");
        assert_eq!(versions.len(), 2, "<VersionId> is not a <Version>");
        assert_eq!(
            element(versions[1], "Key").as_deref(),
            Some("my-second-image.jpg")
        );
        let markers = super::blocks(listing, "DeleteMarker");
        assert_eq!(element(markers[0], "IsLatest").as_deref(), Some("true"));
        assert_eq!(
            super::uri_encode("h/_patchtrail/chain/"),
            "h%2F_patchtrail%2Fchain%2F"
        );
    }
}
