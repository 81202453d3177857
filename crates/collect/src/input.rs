//! The EventBridge Scheduler input: the seed's `{"s3_bucket": "...", "s3_path": "..."}` plus
//! optional patchtrail options, and the scopes of an organization (the same names as the
//! command line's `--accounts`, `--organization`, `--regions`, `--role-name`; `account_id` and
//! `region` name one scope, as the Step Functions fan-out passes them). Shared by
//! `collect --input-json` and the Lambda handler.

use crate::{
    Accounts, CollectError, Regions, RunControl, ScopePlan, TagSelector, parse_classifications,
    run_to_resume,
};
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
    /// `plan`: list the scopes instead of collecting them (the state machine's first step).
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub accounts: Vec<String>,
    #[serde(default)]
    pub organization: bool,
    /// Region codes, or `["all"]`: the regions enabled for each account.
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub role_name: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub role_session_name: Option<String>,
    /// One scope: this account (with `region`).
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Continue this suspended run instead of beginning one.
    #[serde(default)]
    pub resume: Option<String>,
    /// Suspend the run at the invocation's deadline (one scope only): the answer is then
    /// `{"status": "suspended", "resume": RUN_ID}` for the caller to invoke again with.
    #[serde(default)]
    pub resumable: bool,
    /// After each committed run, its scope's findings into these systems: `["security-hub"]`
    /// (docs/semantics.md §9.3).
    #[serde(default)]
    pub export: Vec<String>,
}

/// A scheduler input, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedInput {
    pub store_url: String,
    pub tag: TagSelector,
    pub classifications: Vec<String>,
    pub scopes: ScopePlan,
    /// Only list the scopes.
    pub plan_only: bool,
    /// The run's format, whether to continue a run, and whether a stop suspends it.
    pub control: RunControl,
    /// Send each committed scope's findings to Security Hub.
    pub export_security_hub: bool,
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
        let plan_only = match self.action.as_deref() {
            None | Some("collect") => false,
            Some("plan") => true,
            Some(other) => {
                return Err(CollectError::BadInput {
                    input: format!("action '{other}' in the input"),
                    fix: "give \"plan\" (list the scopes) or \"collect\" (the default)".into(),
                });
            }
        };
        let scopes = self.scope_plan()?;
        let mut export_security_hub = false;
        for export in &self.export {
            match export.as_str() {
                "security-hub" => export_security_hub = true,
                other => {
                    return Err(CollectError::BadInput {
                        input: format!("export '{other}' in the input"),
                        fix: "give [\"security-hub\"], or leave export out".into(),
                    });
                }
            }
        }
        if self.resumable && !scopes.is_single() {
            return Err(CollectError::BadInput {
                input: "resumable in the input".into(),
                fix: "a resumable invocation collects one (account, region): give account_id and region (the organization state machine does)".into(),
            });
        }
        let control = RunControl {
            format,
            snapshot_time: None,
            resume: self
                .resume
                .as_deref()
                .map(|id| run_to_resume(id, "resume in the input"))
                .transpose()?,
            suspend_on_stop: self.resumable,
        };
        Ok(ResolvedInput {
            store_url,
            tag: TagSelector::parse(self.tag_key.as_deref(), &self.tags)?,
            classifications: parse_classifications(
                &self.classifications,
                self.all_classifications,
            )?,
            scopes,
            plan_only,
            control,
            export_security_hub,
        })
    }

    /// The scopes the input names; the caller's own account and region when it names none.
    /// `account_id` and `region` name one scope and win over `accounts`/`organization` and
    /// `regions`: the state machine passes its whole request along with each scope.
    fn scope_plan(&self) -> Result<ScopePlan, CollectError> {
        let accounts = match (
            &self.account_id,
            self.organization,
            self.accounts.is_empty(),
        ) {
            (Some(id), _, _) => Accounts::List(vec![id.clone()]),
            (None, true, true) => Accounts::Organization,
            (None, false, false) => Accounts::List(self.accounts.clone()),
            (None, false, true) => Accounts::Own,
            (None, true, false) => {
                return Err(CollectError::BadInput {
                    input: "accounts and organization in the input".into(),
                    fix: "give one of them".into(),
                });
            }
        };
        let regions = match (&self.region, self.regions.as_slice()) {
            (Some(r), _) => Regions::List(vec![r.clone()]),
            (None, []) => Regions::Configured,
            (None, [all]) if all.eq_ignore_ascii_case("all") => Regions::Enabled,
            (None, list) => Regions::List(list.to_vec()),
        };
        let mut plan = ScopePlan {
            accounts,
            regions,
            role_name: self.role_name.clone(),
            external_id: self.external_id.clone(),
            ..ScopePlan::default()
        };
        if let Some(name) = &self.role_session_name {
            plan.session_name = name.clone();
        }
        plan.check()?;
        Ok(plan)
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
        assert_eq!(r.control.format, StoreFormat::Seed);
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
        let e = SchedulerInput::parse(r#"{"s3_bucket":"b","resume":"../x"}"#)
            .and_then(|i| i.resolve())
            .expect_err("run id");
        assert!(
            e.to_string().starts_with("resume in the input '../x'"),
            "{e}"
        );
        let e = SchedulerInput::parse(r#"{"s3_bucket":"b","organization":true,"resumable":true}"#)
            .and_then(|i| i.resolve())
            .expect_err("one scope");
        assert!(e.to_string().contains("account_id and region"), "{e}");
    }

    #[test]
    fn a_resumable_scope_continues_its_run() {
        let input = SchedulerInput::parse(
            r#"{"s3_bucket":"b","account_id":"111111111111","region":"us-east-1","resumable":true,"resume":"20260301-111111111111-us-east-1-01"}"#,
        )
        .expect("valid");
        let control = input.resolve().expect("resolves").control;
        assert!(control.suspend_on_stop);
        assert_eq!(
            control.resume.as_deref(),
            Some("20260301-111111111111-us-east-1-01")
        );
    }
}
