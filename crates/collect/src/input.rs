//! The EventBridge Scheduler input: the seed's `{"s3_bucket": "...", "s3_path": "..."}` plus
//! optional patchtrail options. Shared by `collect --input-json` and the Lambda handler.

use crate::{CollectError, TagSelector, parse_classifications};
use patchtrail_model::StoreFormat;
use patchtrail_store::seed_input_url;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerInput {
    /// Bucket name; the seed's console input carries a trailing slash (`"my-bucket/"`).
    pub s3_bucket: String,
    #[serde(default)]
    pub s3_path: String,
    #[serde(default)]
    pub tag_key: Option<String>,
    /// `["K=V", ...]`, like repeated `--tag`.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub classifications: Vec<String>,
    #[serde(default)]
    pub all_classifications: bool,
    /// `parquet`, `jsonl` or `seed`; the seed's own format when absent, so that the input the
    /// seed was scheduled with writes exactly where and what the seed wrote.
    #[serde(default)]
    pub format: Option<String>,
}

/// A scheduler input, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedInput {
    pub store_url: String,
    pub tag: TagSelector,
    pub classifications: Vec<String>,
    pub format: StoreFormat,
}

const EXAMPLE: &str = r#"'{"s3_bucket":"my-bucket/","s3_path":"patch-history"}'"#;

impl SchedulerInput {
    pub fn parse(json: &str) -> Result<SchedulerInput, CollectError> {
        serde_json::from_str(json).map_err(|e| CollectError::BadInput {
            input: "--input-json".into(),
            fix: format!("{e}; pass a JSON object such as {EXAMPLE}"),
        })
    }

    pub fn resolve(&self) -> Result<ResolvedInput, CollectError> {
        let store_url = seed_input_url(&self.s3_bucket, &self.s3_path)?;
        let format = match &self.format {
            None => StoreFormat::Seed,
            Some(f) => f.parse().map_err(|e: String| CollectError::BadInput {
                input: "format in --input-json".into(),
                fix: e,
            })?,
        };
        Ok(ResolvedInput {
            store_url,
            tag: TagSelector::parse(self.tag_key.as_deref(), &self.tags)?,
            classifications: parse_classifications(
                &self.classifications,
                self.all_classifications,
            )?,
            format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_own_input_is_accepted() {
        let input = SchedulerInput::parse(r#"{"s3_bucket":"b/","s3_path":"p"}"#).expect("valid");
        let r = input.resolve().expect("resolves");
        assert_eq!(r.store_url, "s3://b/p");
        assert_eq!(r.format, StoreFormat::Seed);
        assert_eq!(r.tag, TagSelector::default());
        assert_eq!(r.classifications.len(), 3);
    }

    #[test]
    fn bad_inputs_say_what_to_do() {
        let e = SchedulerInput::parse("{not json").expect_err("malformed");
        assert!(e.to_string().starts_with("--input-json:"), "{e}");
        let e = SchedulerInput::parse(r#"{"s3_bukket":"b"}"#).expect_err("typo");
        assert!(e.to_string().contains("s3_bukket"), "{e}");
        let e = SchedulerInput::parse(r#"{"s3_bucket":"b","format":"csv"}"#)
            .and_then(|i| i.resolve())
            .expect_err("format");
        assert!(e.to_string().contains("parquet, jsonl or seed"), "{e}");
    }
}
