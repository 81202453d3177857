//! What to collect, validated once: tag selection, classifications, the ceilings of concurrency and rate.

use crate::CollectError;
use patchtrail_model::{
    KNOWN_CLASSIFICATIONS, RunConfig, SEED_CLASSIFICATIONS, is_known_classification,
};

/// Which EC2 instances to collect: those carrying tag `key` (with one of `values`, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSelector {
    pub key: String,
    pub values: Vec<String>,
}

impl Default for TagSelector {
    fn default() -> Self {
        TagSelector {
            key: patchtrail_model::SEED_TAG_KEY.into(),
            values: Vec::new(),
        }
    }
}

impl TagSelector {
    /// The filter that selects these instances, as EC2 and SSM both name it: `tag-key` = the
    /// key (any value), or `tag:<key>` = the values.
    pub fn filter(&self) -> (String, Vec<String>) {
        if self.values.is_empty() {
            ("tag-key".into(), vec![self.key.clone()])
        } else {
            (format!("tag:{}", self.key), self.values.clone())
        }
    }

    /// From `--tag-key K` or repeated `--tag K=V` (one key; several values mean any of them).
    pub fn parse(tag_key: Option<&str>, tags: &[String]) -> Result<TagSelector, CollectError> {
        let bad = |input: &str, why: &str| CollectError::BadInput {
            input: input.to_string(),
            fix: why.to_string(),
        };
        if tag_key.is_some() && !tags.is_empty() {
            return Err(bad(
                "--tag-key with --tag",
                "use --tag-key K for any value, or --tag K=V for values, not both",
            ));
        }
        if let Some(key) = tag_key {
            if key.trim().is_empty() {
                return Err(bad(
                    "--tag-key ''",
                    "give a tag key, e.g. --tag-key CheckPatch",
                ));
            }
            return Ok(TagSelector {
                key: key.to_string(),
                values: Vec::new(),
            });
        }
        if tags.is_empty() {
            return Ok(TagSelector::default());
        }
        let mut key: Option<String> = None;
        let mut values = Vec::new();
        for tag in tags {
            let (k, v) = tag
                .split_once('=')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| {
                    bad(
                        &format!("--tag '{tag}'"),
                        "write it as KEY=VALUE, e.g. --tag CheckPatch=true",
                    )
                })?;
            if key.as_deref().is_some_and(|existing| existing != k) {
                return Err(bad(
                    &format!("--tag '{tag}'"),
                    "all --tag options must name the same key",
                ));
            }
            key = Some(k.to_string());
            values.push(v.to_string());
        }
        Ok(TagSelector {
            key: key.unwrap_or_default(),
            values,
        })
    }
}

/// Validates `--classification` values; empty input means the seed's three.
pub fn parse_classifications(given: &[String], all: bool) -> Result<Vec<String>, CollectError> {
    if all {
        if !given.is_empty() {
            return Err(CollectError::BadInput {
                input: "--all-classifications with --classification".into(),
                fix: "use one of them".into(),
            });
        }
        return Ok(Vec::new());
    }
    if given.is_empty() {
        return Ok(SEED_CLASSIFICATIONS.iter().map(|c| c.to_string()).collect());
    }
    let mut out: Vec<String> = Vec::new();
    for c in given.iter().flat_map(|c| c.split(',')).map(str::trim) {
        if !is_known_classification(c) {
            let hint = KNOWN_CLASSIFICATIONS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(c));
            return Err(CollectError::BadInput {
                input: format!("--classification '{c}'"),
                fix: match hint {
                    Some(k) => format!("classifications are case-sensitive: did you mean '{k}'?"),
                    None => format!("use one of {}", KNOWN_CLASSIFICATIONS.join(", ")),
                },
            });
        }
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    }
    Ok(out)
}

/// Most instances under way at once, by default: enough for 1,000 requests per second at
/// 250 ms of latency; the pace decides how many are actually used.
pub const DEFAULT_CONCURRENCY: usize = 512;

/// Everything that shapes one collection.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub tag: TagSelector,
    /// Classification filter; empty means all classifications.
    pub classifications: Vec<String>,
    /// Most instances collected at once; fewer when the learnt pace needs fewer.
    pub concurrency: usize,
    /// Ceiling of the self-tuning pace per API, requests per second.
    pub max_tps: Option<f64>,
    /// SDK attempts per call, the first included (adaptive retry mode).
    pub max_attempts: u32,
    /// Also collect tagged hybrid (`mi-`) nodes, which EC2 does not list (`--no-hybrid`: not).
    pub hybrid: bool,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            tag: TagSelector::default(),
            classifications: SEED_CLASSIFICATIONS.iter().map(|c| c.to_string()).collect(),
            concurrency: DEFAULT_CONCURRENCY,
            max_tps: None,
            max_attempts: 10,
            hybrid: true,
        }
    }
}

impl CollectOptions {
    /// These options selecting what `config` (a run's) selected: a continued run keeps them.
    pub fn following(&self, config: &RunConfig) -> CollectOptions {
        CollectOptions {
            tag: TagSelector {
                key: config.tag_key.clone(),
                values: config.tag_values.clone(),
            },
            classifications: config.classifications.clone(),
            hybrid: config.hybrid,
            ..self.clone()
        }
    }

    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            tag_key: self.tag.key.clone(),
            tag_values: self.tag.values.clone(),
            classifications: self.classifications.clone(),
            hybrid: self.hybrid,
            patch_states: true,
            origin: Some("collect".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_syntax() {
        assert_eq!(
            TagSelector::parse(None, &[]).ok(),
            Some(TagSelector::default())
        );
        let t =
            TagSelector::parse(None, &["Patch=yes".into(), "Patch=true".into()]).expect("valid");
        assert_eq!(
            t,
            TagSelector {
                key: "Patch".into(),
                values: vec!["yes".into(), "true".into()]
            }
        );
        assert!(TagSelector::parse(None, &["Patch".into()]).is_err());
        assert!(TagSelector::parse(None, &["=x".into()]).is_err());
        assert!(TagSelector::parse(None, &["A=1".into(), "B=2".into()]).is_err());
        assert!(TagSelector::parse(Some("K"), &["A=1".into()]).is_err());
    }

    #[test]
    fn classifications() {
        assert_eq!(parse_classifications(&[], false).expect("default").len(), 3);
        assert!(parse_classifications(&[], true).expect("all").is_empty());
        assert_eq!(
            parse_classifications(&["Security,Bugfix".into(), "Security".into()], false)
                .expect("valid"),
            vec!["Security".to_string(), "Bugfix".to_string()]
        );
        let err = parse_classifications(&["securityupdates".into()], false).expect_err("case");
        assert!(err.to_string().contains("SecurityUpdates"), "{err}");
    }
}
