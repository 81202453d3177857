//! The protection an S3 bucket gives the history beyond patchtrail's own create-only writes:
//! versioning (an overwritten or deleted object can be recovered) and Object Lock (it cannot be
//! deleted at all). object_store has no call for bucket settings, so these two GETs are signed
//! with its SigV4 authorizer and sent through its HTTP client, with the store's own region,
//! endpoint and credentials. Wire shapes: S3 API reference, `GetBucketVersioning`
//! (`<VersioningConfiguration><Status>Enabled|Suspended</Status>`, no `Status` when never
//! enabled) and `GetObjectLockConfiguration` (`<ObjectLockEnabled>Enabled</ObjectLockEnabled>`,
//! or the error `ObjectLockConfigurationNotFoundError` when the bucket has none).

use crate::location::S3Endpoint;
use crate::{Store, StoreError, StoreKind};
use object_store::CredentialProvider;
use object_store::aws::AwsAuthorizer;
use object_store::client::{HttpConnector, HttpRequest, ReqwestConnector};
use serde::Serialize;

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
                if sub == "versioning" {
                    "GetBucketVersioning"
                } else {
                    "GetBucketObjectLockConfiguration"
                }
            ))),
            _ => Err(failed(code)),
        }
    }
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
}
