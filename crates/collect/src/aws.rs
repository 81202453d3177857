//! The AWS side: EC2 discovery, SSM patches and patch states, STS identity, through the official
//! SDK. SDK types stay in this module; the rest of patchtrail sees `patchtrail_model` rows.
//!
//! Wire facts honoured here: patch `State` arrives CamelCase (not the model's enum), EC2
//! `platform` arrives lowercase (so `platformDetails` is read instead), `MaxResults` above 50 is
//! rejected by DescribeInstancePatches, and `InstalledTime` is 0 or year 1 when not installed.
//! A refused `NextToken` (they expire; a long, throttled walk can outlive one) restarts that
//! walk from its first page, keeping nothing of the old pages twice.

use crate::pacing::{Progress, RateController};
use crate::seen::IdSet;
use crate::{CollectError, CollectOptions, TagSelector};
use aws_sdk_ec2::types::Filter;
use aws_sdk_ssm::types::{PatchComplianceData, PatchOrchestratorFilter};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use chrono::{DateTime, Utc};
use patchtrail_model::normalise_patch_state;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Discovery of the tagged fleet one page at a time, so that collection can start on the first
/// page while EC2 answers the next, and no list of the whole fleet is ever held.
pub struct Discovery {
    fleet: AwsFleet,
    filter: Filter,
    pager: Pager,
    /// Ids already returned: a walk that starts over returns each instance once.
    seen: IdSet,
    done: bool,
}

impl Discovery {
    pub fn new(fleet: AwsFleet, tag: &TagSelector) -> Discovery {
        let (name, values) = tag.filter();
        let filter = Filter::builder()
            .name(name)
            .set_values(Some(values))
            .build();
        Discovery {
            fleet,
            filter,
            pager: Pager::default(),
            seen: IdSet::default(),
            done: false,
        }
    }

    /// The next page's instances not seen before (`None` after the last page).
    pub async fn next_page(&mut self) -> Result<Option<Vec<Ec2Instance>>, CollectError> {
        if self.done {
            return Ok(None);
        }
        let ((mut page, next), _) = self
            .pager
            .fetch(|token| self.fleet.instances_page(&self.filter, token))
            .await
            .map_err(|error| CollectError::Aws {
                operation: "ec2:DescribeInstances",
                error,
            })?;
        // A walk that started over returns its first instances again: each is kept once.
        page.retain(|i| self.seen.insert(&i.instance_id));
        self.done = !self.pager.follow(next.as_deref());
        Ok(Some(page))
    }
}

/// Discovery of the tagged hybrid (`mi-`) nodes, which EC2 does not know: pages of
/// `ssm:DescribeInstanceInformation` filtered by the same tag and `ResourceType=ManagedInstance`.
pub struct HybridDiscovery {
    fleet: AwsFleet,
    filters: Vec<aws_sdk_ssm::types::InstanceInformationStringFilter>,
    pager: Pager,
    seen: IdSet,
    done: bool,
}

impl HybridDiscovery {
    pub fn new(fleet: AwsFleet, tag: &TagSelector) -> Result<HybridDiscovery, CollectError> {
        let (name, values) = tag.filter();
        let filters = information_filter(&name, values).and_then(|tag_filter| {
            let resource = information_filter("ResourceType", vec!["ManagedInstance".into()])?;
            Ok(vec![tag_filter, resource])
        });
        Ok(HybridDiscovery {
            fleet,
            filters: filters.map_err(hybrid_failed)?,
            pager: Pager::default(),
            seen: IdSet::default(),
            done: false,
        })
    }

    /// The next page of hybrid nodes (`None` after the last page). A denied action ends the
    /// walk without an error: the fleet has warned once, and the run goes on with EC2 alone.
    pub async fn next_page(&mut self) -> Result<Option<Vec<NodeInfo>>, CollectError> {
        if self.done {
            return Ok(None);
        }
        let ((mut page, next), _) = match self
            .pager
            .fetch(|token| self.fleet.information_page(&self.filters, token))
            .await
        {
            Ok(answer) => answer,
            Err(e) if e.is_denied() => {
                self.done = true;
                return Ok(None);
            }
            Err(e) => return Err(hybrid_failed(e)),
        };
        page.retain(|n| self.seen.insert(&n.instance_id));
        self.done = !self.pager.follow(next.as_deref());
        Ok(Some(page))
    }
}

fn hybrid_failed(error: CallError) -> CollectError {
    CollectError::Aws {
        operation: "ssm:DescribeInstanceInformation",
        error,
    }
}

/// An EC2 instance as discovery found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Instance {
    pub instance_id: String,
    pub state: Option<String>,
    pub platform_details: Option<String>,
    pub instance_type: Option<String>,
    pub launch_time: Option<DateTime<Utc>>,
    pub tags: BTreeMap<String, String>,
}

/// The SSM patch-state summary of one instance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PatchStateSummary {
    pub baseline_id: String,
    pub patch_group: String,
    pub operation: String,
    pub operation_start_time: Option<DateTime<Utc>>,
    pub operation_end_time: Option<DateTime<Utc>>,
    pub installed: Option<i64>,
    pub installed_other: Option<i64>,
    pub installed_pending_reboot: Option<i64>,
    pub installed_rejected: Option<i64>,
    pub missing: Option<i64>,
    pub failed: Option<i64>,
    pub not_applicable: Option<i64>,
    pub critical_non_compliant: Option<i64>,
    pub security_non_compliant: Option<i64>,
    pub other_non_compliant: Option<i64>,
    pub unreported_not_applicable: Option<i64>,
    pub available_security_update: Option<i64>,
    pub reboot_option: Option<String>,
    pub last_no_reboot_install_time: Option<DateTime<Utc>>,
    pub snapshot_id: Option<String>,
    pub install_override_list: Option<String>,
    pub owner_information: Option<String>,
}

/// A managed node as `ssm:DescribeInstanceInformation` reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeInfo {
    pub instance_id: String,
    pub resource_type: Option<String>,
    pub ping_status: Option<String>,
    pub last_ping_time: Option<DateTime<Utc>>,
    pub agent_version: Option<String>,
    pub platform_type: Option<String>,
    pub platform_name: Option<String>,
    pub platform_version: Option<String>,
    pub computer_name: Option<String>,
    pub ip_address: Option<String>,
}

/// One patch as SSM reported it, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    pub kb_id: String,
    pub title: String,
    pub classification: String,
    pub severity: String,
    pub state: String,
    pub installed_time: Option<DateTime<Utc>>,
    pub cve_ids: Option<String>,
    /// `InstalledTime` as sent, not-installed markers included (for the seed layout).
    pub installed_time_sent: Option<DateTime<Utc>>,
    /// AWS's `ReleaseDate` of the patch (`DescribeAvailablePatches`, see `releases`).
    pub release_date: Option<DateTime<Utc>>,
}

/// A failed AWS call after the SDK's retries: its error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub code: String,
    pub message: String,
}

impl CallError {
    /// The identity's policy does not allow the action (any service's spelling of it).
    pub fn is_denied(&self) -> bool {
        crate::ACCESS_DENIED_CODES.contains(&self.code.as_str())
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The messages of an error and its sources, joined on one line, each said once: what a person
/// reads. (`DisplayErrorContext` appends a `Debug` dump of the whole chain; that goes to the
/// debug log, shown with `-v`.)
pub(crate) fn one_line_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// Code and message of a failed SDK call, whichever service it was.
pub(crate) fn call_error<E>(e: SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    tracing::info!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "AWS call failed");
    let context = one_line_chain(&e);
    let (code, message) = match &e {
        SdkError::ServiceError(s) => (
            s.err().code().unwrap_or("Unknown").to_string(),
            s.err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| context.clone()),
        ),
        SdkError::DispatchFailure(_) => ("DispatchFailure".to_string(), context),
        SdkError::TimeoutError(_) => ("Timeout".to_string(), context),
        SdkError::ResponseError(_) => ("ResponseError".to_string(), context),
        SdkError::ConstructionFailure(_) => ("ConstructionFailure".to_string(), context),
        _ => ("Unknown".to_string(), context),
    };
    CallError {
        code,
        message: message.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// A wire time at the stored precision. The wire sends fractional epoch seconds, which parse a
/// few nanoseconds off (`1550501835.178` becomes `.177999973`): rounded to the microsecond, it
/// is the time AWS sent, not one a microsecond earlier.
pub(crate) fn to_utc(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    let micros = (i64::from(t.subsec_nanos()) + 500) / 1000;
    DateTime::from_timestamp_micros(t.secs().checked_mul(1_000_000)?.checked_add(micros)?)
}

/// The body of a call's last answer, kept by a per-call interceptor: the SDK's model reads some
/// members as required and turns an absent one into 0, so what AWS left out is only visible here.
#[derive(Debug, Clone, Default)]
struct AnswerBody(Arc<std::sync::Mutex<Option<Vec<u8>>>>);

impl Intercept for AnswerBody {
    fn name(&self) -> &'static str {
        "patchtrail-answer-body"
    }

    /// After deserialization the orchestrator has read the whole body into memory (non-streaming
    /// operations), so this copies bytes the SDK has already parsed, without another read.
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes()
            && let Ok(mut kept) = self.0.lock()
        {
            *kept = Some(bytes.to_vec());
        }
        Ok(())
    }
}

/// The count members of `DescribeInstancePatchStates` as they came over the wire, per instance.
///
/// AWS's model marks `InstalledCount`, `InstalledOtherCount`, `MissingCount`, `FailedCount` and
/// `NotApplicableCount` optional in the JSON (awsJson1_1) answer, but aws-sdk-ssm's
/// `InstancePatchStateBuilder::build` defaults them to 0 (`unwrap_or_default()`), so a count AWS
/// did not send would be stored as "0 patches missing". These five are read from the body
/// instead; an absent one is stored as null (docs/semantics.md: null is "not reported").
#[derive(Debug, Default)]
struct WireCounts(HashMap<String, serde_json::Map<String, serde_json::Value>>);

impl WireCounts {
    fn read(body: &AnswerBody) -> WireCounts {
        let bytes = body.0.lock().ok().and_then(|mut b| b.take());
        let states = bytes
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|mut v| match v.get_mut("InstancePatchStates")?.take() {
                serde_json::Value::Array(states) => Some(states),
                _ => None,
            })
            .unwrap_or_default();
        WireCounts(
            states
                .into_iter()
                .filter_map(|state| match state {
                    serde_json::Value::Object(members) => {
                        Some((members.get("InstanceId")?.as_str()?.to_string(), members))
                    }
                    _ => None,
                })
                .collect(),
        )
    }

    /// The member as sent, or None when the answer left it out (or was not JSON, which the SDK
    /// would have refused before this is read).
    fn count(&self, instance_id: &str, member: &str) -> Option<i64> {
        self.0.get(instance_id)?.get(member)?.as_i64()
    }
}

/// Counts HTTP attempts (retries included) for the progress display.
#[derive(Debug)]
struct AttemptCounter(Arc<Progress>);

impl Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "patchtrail-attempt-counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Progress::add(&self.0.attempts, 1);
        Ok(())
    }
}

/// The AWS account and region patchtrail reads from, with its clients and the self-tuning pace
/// of each API. Cheap to clone: clones share clients, pacing and counters.
#[derive(Clone)]
pub struct AwsFleet {
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    sts: aws_sdk_sts::Client,
    region: String,
    progress: Arc<Progress>,
    /// Attempts per call for transient failures (throttles are paced, not counted).
    max_attempts: u32,
    instances_pace: Arc<RateController>,
    patches_pace: Arc<RateController>,
    states_pace: Arc<RateController>,
    nodes_pace: Arc<RateController>,
    /// Set when `DescribeInstanceInformation` is denied: asked once, then not again in the run.
    nodes_denied: Arc<std::sync::atomic::AtomicBool>,
    available_pace: Arc<RateController>,
    /// The release dates of the patches this run saw, each asked once.
    releases: Arc<crate::releases::ReleaseDates>,
}

/// Error codes with which AWS services say "too fast" (SSM, EC2, STS, Organizations, S3).
const THROTTLING_CODES: [&str; 6] = [
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
];

/// Throttles a single call may meet before it gives up (the pace falls at each round).
const MAX_THROTTLES_PER_CALL: u32 = 100;

/// Times one walk starts over from its first page after its `NextToken` was refused.
const MAX_RESTARTS: u32 = 3;

/// Where one paginated walk stands: the token of the next page, and how often it started over.
#[derive(Debug, Default)]
struct Pager {
    token: Option<String>,
    restarts: u32,
}

impl Pager {
    /// Moves to the next page's token; false after the last page. An empty token ends paging
    /// too, and so does a token that repeats (it would page forever).
    fn follow(&mut self, next: Option<&str>) -> bool {
        match next.filter(|t| !t.is_empty()) {
            Some(next) if self.token.as_deref() != Some(next) => {
                self.token = Some(next.to_string());
                true
            }
            _ => false,
        }
    }

    /// After a failed page: whether to start the walk over from its first page, because the
    /// service refused its token (`InvalidNextToken`, EC2's `InvalidPaginationToken`: tokens
    /// expire, and a long, throttled walk can outlive one) and it has not started over too often.
    fn start_over(&mut self, e: &CallError) -> bool {
        let refused = matches!(
            e.code.as_str(),
            "InvalidNextToken" | "InvalidPaginationToken"
        );
        if self.token.is_none() || !refused || self.restarts >= MAX_RESTARTS {
            return false;
        }
        tracing::info!(error = %e, "a NextToken was refused: reading again from the first page");
        self.token = None;
        self.restarts += 1;
        true
    }

    /// The page at the walk's token, asked with `page`; a refused token starts the walk over
    /// ([`Pager::start_over`]). The flag says it did: what the caller kept of the walk's
    /// earlier pages is to be read again.
    async fn fetch<T, Fut>(
        &mut self,
        page: impl Fn(Option<String>) -> Fut,
    ) -> Result<(T, bool), CallError>
    where
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let mut restarted = false;
        loop {
            match page(self.token.clone()).await {
                Ok(answer) => return Ok((answer, restarted)),
                Err(e) if self.start_over(&e) => restarted = true,
                Err(e) => return Err(e),
            }
        }
    }
}

/// What a failed attempt calls for.
#[derive(Debug, PartialEq, Eq)]
enum Retry {
    /// Too fast: slow the pace and try again at the next slot.
    Paced,
    /// A fault of the network or the service: back off, then try again.
    BackOff,
    /// An answer that will not change (denied, invalid, unknown instance).
    Never,
}

fn retry_of<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Retry {
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            if THROTTLING_CODES.contains(&s.err().code().unwrap_or_default()) || status == 429 {
                Retry::Paced
            } else if status >= 500 {
                Retry::BackOff
            } else {
                Retry::Never
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            Retry::BackOff
        }
        _ => Retry::Never,
    }
}

/// Full-jitter exponential back-off before attempt `attempt + 1` (1 s base, 20 s cap, as the
/// AWS SDKs' standard mode).
fn back_off(attempt: u32) -> std::time::Duration {
    let cap = (1u64 << attempt.min(5)).min(20) as f64;
    std::time::Duration::from_secs_f64(cap * fastrand::f64())
}

impl AwsFleet {
    /// Builds the clients from a resolved SDK config (credentials, region, endpoints), with
    /// adaptive retry and `options.max_attempts`.
    pub fn new(
        config: &aws_types::SdkConfig,
        options: &CollectOptions,
        progress: Arc<Progress>,
    ) -> Result<AwsFleet, CollectError> {
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or(CollectError::NoRegion)?;
        // EC2 and SSM calls are retried here, paced by the controllers; STS keeps the SDK's.
        let no_retry = RetryConfig::disabled();
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(config)
                .retry_config(no_retry.clone())
                .interceptor(AttemptCounter(progress.clone()))
                .build(),
        );
        let ssm = aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(config)
                .retry_config(no_retry)
                .interceptor(AttemptCounter(progress.clone()))
                .build(),
        );
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(config)
                .retry_config(
                    RetryConfig::standard().with_max_attempts(options.max_attempts.max(1)),
                )
                .interceptor(AttemptCounter(progress.clone()))
                .build(),
        );
        let pace = || Arc::new(RateController::new(options.max_tps));
        Ok(AwsFleet {
            ec2,
            ssm,
            sts,
            region,
            progress,
            max_attempts: options.max_attempts.max(1),
            instances_pace: pace(),
            patches_pace: pace(),
            states_pace: pace(),
            nodes_pace: pace(),
            nodes_denied: Arc::default(),
            available_pace: pace(),
            releases: Arc::default(),
        })
    }

    /// Sends one call at `pace`: a throttled attempt slows the pace and goes again at the next
    /// slot; a transient fault backs off, up to `max_attempts`; anything else is the answer.
    async fn send<T, E, Fut>(
        &self,
        pace: &RateController,
        attempt: impl Fn() -> Fut,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        self.count_call();
        let (mut faults, mut throttles) = (0u32, 0u32);
        loop {
            let sent = pace.acquire().await;
            let error = match attempt().await {
                Ok(out) => {
                    pace.answered(sent);
                    return Ok(out);
                }
                Err(e) => e,
            };
            match retry_of(&error) {
                Retry::Paced if throttles < MAX_THROTTLES_PER_CALL => {
                    throttles += 1;
                    Progress::add(&self.progress.throttled, 1);
                    pace.throttled(sent);
                }
                Retry::BackOff if faults + 1 < self.max_attempts => {
                    faults += 1;
                    tokio::time::sleep(back_off(faults)).await;
                }
                _ => return Err(error),
            }
        }
    }

    /// How many instances to collect at once: what the pace of DescribeInstancePatches needs
    /// at its measured latency, at most `ceiling`.
    pub fn window(&self, ceiling: usize) -> usize {
        self.patches_pace.window(ceiling)
    }

    /// How many DescribeInstancePatchStates calls to keep under way, at most `ceiling`.
    pub fn states_window(&self, ceiling: usize) -> usize {
        self.states_pace.window(ceiling)
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    fn count_call(&self) {
        Progress::add(&self.progress.calls, 1);
    }

    /// The account id of the caller (`sts:GetCallerIdentity`); also proves the credentials work.
    pub async fn account_id(&self) -> Result<String, CollectError> {
        Ok(self.identity().await?.0)
    }

    /// Who the credentials are: `(account id, ARN)` from `sts:GetCallerIdentity`.
    pub async fn identity(&self) -> Result<(String, String), CollectError> {
        self.count_call();
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| CollectError::from_identity(call_error(e)))?;
        let account = out
            .account()
            .map(str::to_string)
            .ok_or_else(|| CollectError::Aws {
                operation: "sts:GetCallerIdentity",
                error: CallError {
                    code: "ResponseError".into(),
                    message: "the answer has no Account".into(),
                },
            })?;
        Ok((account, out.arn().unwrap_or_default().to_string()))
    }

    /// Every instance carrying the tag, all pages, running and stopped alike (terminated ones
    /// are gone and skipped).
    pub async fn discover(&self, tag: &TagSelector) -> Result<Vec<Ec2Instance>, CollectError> {
        let mut discovery = Discovery::new(self.clone(), tag);
        let mut found = Vec::new();
        while let Some(page) = discovery.next_page().await? {
            found.extend(page);
        }
        Ok(found)
    }

    /// One `ec2:DescribeInstances` page of tagged instances and the token of the next.
    async fn instances_page(
        &self,
        filter: &Filter,
        token: Option<String>,
    ) -> Result<(Vec<Ec2Instance>, Option<String>), CallError> {
        let request = self
            .ec2
            .describe_instances()
            .filters(filter.clone())
            // Instances that AWS services manage for the account (hidden by default when
            // managed-resource visibility is off) are tagged instances to audit too.
            .include_managed_resources(true)
            .max_results(1000)
            .set_next_token(token);
        let page = self
            .send(&self.instances_pace, || request.clone().send())
            .await
            .map_err(call_error)?;
        let instances = page
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|instance| {
                let state = instance
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string());
                if state.as_deref() == Some("terminated") {
                    return None;
                }
                Some(Ec2Instance {
                    instance_id: instance.instance_id()?.to_string(),
                    state,
                    platform_details: instance.platform_details().map(str::to_string),
                    instance_type: instance.instance_type().map(|t| t.as_str().to_string()),
                    launch_time: instance.launch_time().and_then(to_utc),
                    tags: instance
                        .tags()
                        .iter()
                        .filter_map(|t| {
                            Some((
                                t.key()?.to_string(),
                                t.value().unwrap_or_default().to_string(),
                            ))
                        })
                        .collect(),
                })
            })
            .collect();
        let next = page
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok((instances, next))
    }

    /// What SSM knows of the managed nodes among `ids` (at most 50), by id, from
    /// `ssm:DescribeInstanceInformation` filtered by `InstanceIds`. Nodes SSM does not list
    /// (not registered, stopped, terminated) are absent.
    pub async fn nodes(&self, ids: &[String]) -> Result<HashMap<String, NodeInfo>, CallError> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let filter = information_filter("InstanceIds", ids.to_vec())?;
        let filters = [filter];
        let mut pager = Pager::default();
        loop {
            let ((page, next), _) = pager
                .fetch(|token| self.information_page(&filters, token))
                .await?;
            out.extend(page.into_iter().map(|n| (n.instance_id.clone(), n)));
            if !pager.follow(next.as_deref()) {
                break;
            }
        }
        Ok(out)
    }

    /// One `ssm:DescribeInstanceInformation` page (50 nodes) under `filters`, and the next token.
    async fn information_page(
        &self,
        filters: &[aws_sdk_ssm::types::InstanceInformationStringFilter],
        token: Option<String>,
    ) -> Result<(Vec<NodeInfo>, Option<String>), CallError> {
        use std::sync::atomic::Ordering;
        if self.nodes_denied.load(Ordering::Relaxed) {
            return Err(CallError {
                code: "AccessDenied".into(),
                message: "ssm:DescribeInstanceInformation was denied earlier in this run".into(),
            });
        }
        let request = self
            .ssm
            .describe_instance_information()
            .set_filters(Some(filters.to_vec()))
            .max_results(50)
            .set_next_token(token);
        let page = self
            .send(&self.nodes_pace, || request.clone().send())
            .await
            .map_err(call_error)
            .inspect_err(|e| {
                if e.is_denied() && !self.nodes_denied.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "ssm:DescribeInstanceInformation is denied: agent health, OS and hybrid nodes are not collected; allow it in the policy");
                }
            })?;
        let nodes = page
            .instance_information_list()
            .iter()
            .filter_map(node_info)
            .collect();
        Ok((nodes, page.next_token().map(str::to_string)))
    }

    /// Patch-state summaries of up to 50 instances (all pages). Instances SSM does not manage
    /// are simply absent from the answer.
    pub async fn patch_states(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, PatchStateSummary>, CallError> {
        let mut out = HashMap::new();
        let mut pager = Pager::default();
        loop {
            let ((page, wire), _) = pager
                .fetch(|token| {
                    let request = self
                        .ssm
                        .describe_instance_patch_states()
                        .set_instance_ids(Some(ids.to_vec()))
                        .max_results(50)
                        .set_next_token(token);
                    async move {
                        let body = AnswerBody::default();
                        let page = self
                            .send(&self.states_pace, || {
                                request.clone().customize().interceptor(body.clone()).send()
                            })
                            .await
                            .map_err(call_error)?;
                        Ok((page, WireCounts::read(&body)))
                    }
                })
                .await?;
            let text = |v: Option<&str>| v.filter(|t| !t.is_empty()).map(str::to_string);
            for s in page.instance_patch_states() {
                let summary = PatchStateSummary {
                    baseline_id: s.baseline_id().to_string(),
                    patch_group: s.patch_group().to_string(),
                    operation: s.operation().as_str().to_string(),
                    operation_start_time: to_utc(s.operation_start_time()),
                    operation_end_time: to_utc(s.operation_end_time()),
                    installed: wire.count(s.instance_id(), "InstalledCount"),
                    installed_other: wire.count(s.instance_id(), "InstalledOtherCount"),
                    installed_pending_reboot: s.installed_pending_reboot_count().map(Into::into),
                    installed_rejected: s.installed_rejected_count().map(Into::into),
                    missing: wire.count(s.instance_id(), "MissingCount"),
                    failed: wire.count(s.instance_id(), "FailedCount"),
                    not_applicable: wire.count(s.instance_id(), "NotApplicableCount"),
                    critical_non_compliant: s.critical_non_compliant_count().map(Into::into),
                    security_non_compliant: s.security_non_compliant_count().map(Into::into),
                    other_non_compliant: s.other_non_compliant_count().map(Into::into),
                    unreported_not_applicable: s.unreported_not_applicable_count().map(Into::into),
                    available_security_update: s.available_security_update_count().map(Into::into),
                    reboot_option: s.reboot_option().map(|r| r.as_str().to_string()),
                    last_no_reboot_install_time: s
                        .last_no_reboot_install_operation_time()
                        .and_then(to_utc),
                    snapshot_id: text(s.snapshot_id()),
                    install_override_list: text(s.install_override_list()),
                    owner_information: text(s.owner_information()),
                };
                out.insert(s.instance_id().to_string(), summary);
            }
            if !pager.follow(page.next_token()) {
                break;
            }
        }
        Ok(out)
    }

    /// Every page of one instance's patches (50 a page), with the classification filter.
    pub async fn patches(
        &self,
        instance_id: &str,
        classifications: &[String],
    ) -> Result<Vec<Vec<Patch>>, CallError> {
        let filter = (!classifications.is_empty()).then(|| {
            PatchOrchestratorFilter::builder()
                .key("Classification")
                .set_values(Some(classifications.to_vec()))
                .build()
        });
        let mut pages = Vec::new();
        let mut pager = Pager::default();
        loop {
            let (page, restarted) = pager
                .fetch(|token| {
                    let request = self
                        .ssm
                        .describe_instance_patches()
                        .instance_id(instance_id)
                        .set_filters(filter.clone().map(|f| vec![f]))
                        .max_results(50)
                        .set_next_token(token);
                    async move {
                        self.send(&self.patches_pace, || request.clone().send())
                            .await
                            .map_err(call_error)
                    }
                })
                .await?;
            if restarted {
                // This instance's pages again, from the first: none of the old ones is kept.
                pages.clear();
            }
            Progress::set(&self.progress.pace, self.patches_pace.rate() as u64);
            Progress::add(&self.progress.pages, 1);
            pages.push(page.patches().iter().map(patch_of).collect());
            if !pager.follow(page.next_token()) {
                break;
            }
        }
        Ok(pages)
    }
}

impl AwsFleet {
    /// Every patch `ssm:DescribeAvailablePatches` lists under `filters` (all pages of 100).
    pub(crate) async fn available_patches(
        &self,
        filters: Vec<PatchOrchestratorFilter>,
    ) -> Result<Vec<aws_sdk_ssm::types::Patch>, CallError> {
        let mut out = Vec::new();
        let mut pager = Pager::default();
        loop {
            let (page, restarted) = pager
                .fetch(|token| {
                    let request = self
                        .ssm
                        .describe_available_patches()
                        .set_filters(Some(filters.clone()))
                        .max_results(100)
                        .set_next_token(token);
                    async move {
                        self.send(&self.available_pace, || request.clone().send())
                            .await
                            .map_err(call_error)
                    }
                })
                .await?;
            if restarted {
                out.clear();
            }
            out.extend(page.patches().iter().cloned());
            if !pager.follow(page.next_token()) {
                break;
            }
        }
        Ok(out)
    }

    /// One harmless `ssm:DescribeAvailablePatches` call (one KB, one result), for `doctor`.
    pub async fn available_probe(&self) -> Result<usize, CallError> {
        let filter = PatchOrchestratorFilter::builder()
            .key("PATCH_ID")
            .values("KB5034441")
            .build();
        let request = self
            .ssm
            .describe_available_patches()
            .filters(filter)
            .max_results(1);
        self.send(&self.available_pace, || request.clone().send())
            .await
            .map(|page| page.patches().len())
            .map_err(call_error)
    }

    /// Fills the release dates of `pages`, patches of a node of `catalog` (see `releases`).
    pub async fn release_dates(
        &self,
        catalog: Option<crate::releases::Catalog>,
        pages: &mut [Vec<Patch>],
    ) {
        self.releases.fill(self, catalog, pages).await;
    }
}

/// A `DescribeInstanceInformation` filter (`InstanceIds`, `ResourceType`, `tag-key`, `tag:K`).
fn information_filter(
    key: &str,
    values: Vec<String>,
) -> Result<aws_sdk_ssm::types::InstanceInformationStringFilter, CallError> {
    aws_sdk_ssm::types::InstanceInformationStringFilter::builder()
        .key(key)
        .set_values(Some(values))
        .build()
        .map_err(|e| CallError {
            code: "InvalidRequest".into(),
            message: e.to_string(),
        })
}

fn node_info(node: &aws_sdk_ssm::types::InstanceInformation) -> Option<NodeInfo> {
    let text = |v: Option<&str>| v.filter(|t| !t.is_empty()).map(str::to_string);
    Some(NodeInfo {
        instance_id: node.instance_id()?.to_string(),
        resource_type: node.resource_type().map(|t| t.as_str().to_string()),
        ping_status: node.ping_status().map(|p| p.as_str().to_string()),
        last_ping_time: node.last_ping_date_time().and_then(to_utc),
        agent_version: text(node.agent_version()),
        platform_type: node.platform_type().map(|t| t.as_str().to_string()),
        platform_name: text(node.platform_name()),
        platform_version: text(node.platform_version()),
        computer_name: text(node.computer_name()),
        ip_address: text(node.ip_address()),
    })
}

fn patch_of(p: &PatchComplianceData) -> Patch {
    let state = normalise_patch_state(p.state().as_str());
    // Not installed: the wire says 0 or 0001-01-01 (a negative epoch).
    let installed_time = Some(p.installed_time())
        .filter(|t| t.secs() > 0)
        .and_then(to_utc);
    Patch {
        kb_id: p.kb_id().to_string(),
        title: p.title().to_string(),
        classification: p.classification().to_string(),
        severity: p.severity().to_string(),
        state,
        installed_time,
        cve_ids: p.cve_ids().filter(|c| !c.is_empty()).map(str::to_string),
        installed_time_sent: to_utc(p.installed_time()),
        release_date: None,
    }
}
