//! The HTTP endpoint: routes each request to its scope's simulator, then to SSM, EC2, STS or
//! Organizations the way AWS SDKs address them, and serves a small control API under `/_sim/`
//! (date, API rates, answer shapes, stats).
//!
//! Routing: the SigV4 credential (`Credential=<key>/<date>/<region>/<service>/aws4_request`)
//! names the caller (its access key) and the region, which pick the scope; then SSM and
//! Organizations by `X-Amz-Target`, EC2 and STS by the form's `Action`, with the credential's
//! service deciding when the action alone does not. Any signature is accepted.

use crate::limits::Verdict;
use crate::org::Caller;
use crate::wire::{WireResponse, request_id};
use crate::{Org, Sim, SimConfig, ec2, ssm, sts};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

enum Service {
    Ssm(String),
    Ec2(String),
    Sts(String),
    Organizations(String),
}

/// The SigV4 credential of a request: `(access key, region, service)`.
fn credential(headers: &HeaderMap) -> Option<(&str, &str, &str)> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    let mut parts = scope.split('/');
    let key = parts.next()?;
    let region = parts.nth(1)?;
    let service = parts.next()?;
    Some((key, region, service))
}

fn route(headers: &HeaderMap, params: &BTreeMap<String, String>) -> Option<Service> {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return if let Some(op) = target.strip_prefix("AmazonSSM.") {
            Some(Service::Ssm(op.to_string()))
        } else {
            target
                .strip_prefix("AWSOrganizationsV20161128.")
                .map(|op| Service::Organizations(op.to_string()))
        };
    }
    let action = params.get("Action").cloned();
    match (credential(headers).map(|c| c.2), action) {
        (Some("ssm"), _) => Some(Service::Ssm(String::new())),
        (Some("sts"), a) => Some(Service::Sts(a.unwrap_or_default())),
        (Some("ec2"), a) => Some(Service::Ec2(a.unwrap_or_default())),
        (_, Some(a)) if a == "GetCallerIdentity" || a == "AssumeRole" => Some(Service::Sts(a)),
        (_, Some(a)) => Some(Service::Ec2(a)),
        _ => None,
    }
}

fn form_params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if is_form || headers.get("x-amz-target").is_none() {
        params.extend(form_urlencoded::parse(body).into_owned());
    }
    params
}

impl Sim {
    /// The access-denied answer of each service, in the shapes AWS documents: SSM's
    /// `AccessDeniedException` (HTTP 400, awsJson), EC2's `UnauthorizedOperation` (HTTP 403) and
    /// STS's `AccessDenied` (HTTP 403), each message naming the caller and the action as IAM's
    /// "is not authorized to perform" messages do.
    /// `by_scp`: the refusal of an explicit deny in a service control policy, in IAM's words.
    fn access_denied(
        &self,
        caller: &Caller,
        service: &Service,
        action: &str,
        rid: &str,
        by_scp: bool,
    ) -> WireResponse {
        let caller = caller.arn();
        let message = if by_scp {
            format!(
                "User: {caller} is not authorized to perform: {action} with an explicit deny in a service control policy"
            )
        } else {
            format!(
                "User: {caller} is not authorized to perform: {action} because no identity-based policy allows the {action} action"
            )
        };
        match service {
            Service::Ssm(_) | Service::Organizations(_) => {
                WireResponse::json_error(400, "AccessDeniedException", &message)
            }
            Service::Ec2(_) => ec2::error(
                403,
                "UnauthorizedOperation",
                &format!("You are not authorized to perform this operation. {message}"),
                rid,
            ),
            Service::Sts(_) => sts::error(403, "Sender", "AccessDenied", &message, rid),
        }
    }

    /// Answers one AWS request of `caller` (after load shaping and latency).
    pub async fn answer(
        &self,
        caller: &Caller,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (WireResponse, String) {
        let date = self.date();
        let params = if headers.contains_key("x-amz-target") {
            BTreeMap::new()
        } else {
            form_params(uri, headers, body)
        };
        let date_text = date.to_string();
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let rid = request_id(
            self.config.seed,
            &[
                &date_text,
                method.as_str(),
                target,
                &String::from_utf8_lossy(body),
            ],
        );
        let Some(service) = route(headers, &params) else {
            return (
                WireResponse::json_error(
                    400,
                    "UnknownOperationException",
                    "Request names no AWS service (no X-Amz-Target, no Action)",
                ),
                rid,
            );
        };
        let operation = match &service {
            Service::Ssm(op) => format!("ssm:{op}"),
            Service::Ec2(a) => format!("ec2:{a}"),
            Service::Sts(a) => format!("sts:{a}"),
            Service::Organizations(op) => format!("organizations:{op}"),
        };
        if self.config.deny_actions.contains(&operation) {
            return (
                self.access_denied(caller, &service, &operation, &rid, false),
                rid,
            );
        }
        let scope = (self.config.account_id.clone(), self.config.region.clone());
        if matches!(service, Service::Ec2(_) | Service::Ssm(_)) {
            let by_scp = self.config.deny_scopes.contains(&scope);
            if by_scp || self.config.fail_scopes.contains(&scope) {
                return (
                    self.access_denied(caller, &service, &operation, &rid, by_scp),
                    rid,
                );
            }
        }
        let verdict = self.limits.admit(&operation);
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        let response = match (verdict, &service) {
            (Verdict::Throttle, Service::Ssm(_)) => {
                WireResponse::json_error(400, "ThrottlingException", "Rate exceeded")
            }
            (Verdict::Throttle, Service::Ec2(_)) => {
                ec2::error(503, "RequestLimitExceeded", "Request limit exceeded.", &rid)
            }
            (Verdict::Throttle, Service::Sts(_)) => {
                sts::error(400, "Sender", "Throttling", "Rate exceeded", &rid)
            }
            (Verdict::Throttle, Service::Organizations(_)) => WireResponse::json_error(
                400,
                "TooManyRequestsException",
                "AWS Organizations can't complete your request because another request is already in progress. Try again later.",
            ),
            (Verdict::Fault { .. }, Service::Ssm(_) | Service::Organizations(_)) => {
                WireResponse::json_error(
                    500,
                    "InternalServerError",
                    "An error occurred on the server side.",
                )
            }
            (Verdict::Fault { .. }, Service::Ec2(_)) => ec2::error(
                503,
                "Unavailable",
                "The server is overloaded and can't handle the request.",
                &rid,
            ),
            (Verdict::Fault { .. }, Service::Sts(_)) => sts::error(
                500,
                "Receiver",
                "InternalFailure",
                "An internal error occurred.",
                &rid,
            ),
            (Verdict::Serve, Service::Ssm(op)) => ssm::handle(self, op, body, date),
            (Verdict::Serve, Service::Ec2(action)) if action == "DescribeInstances" => {
                ec2::describe_instances(self, &params, date, &rid)
            }
            (Verdict::Serve, Service::Ec2(action)) if action == "DescribeRegions" => self
                .directory
                .describe_regions(&self.config.region, &params, &rid),
            (Verdict::Serve, Service::Ec2(action)) => ec2::error(
                400,
                "InvalidAction",
                &format!("The action {action} is not valid for this web service."),
                &rid,
            ),
            (Verdict::Serve, Service::Sts(action)) if action == "AssumeRole" => {
                self.directory.assume_role(caller, &params, &rid)
            }
            (Verdict::Serve, Service::Sts(action)) => sts::handle(caller, action, &rid),
            (Verdict::Serve, Service::Organizations(op)) if op == "ListAccounts" => {
                self.directory.list_accounts(self, caller, body)
            }
            (Verdict::Serve, Service::Organizations(op)) => WireResponse::json_error(
                400,
                "UnknownOperationException",
                &format!("The simulator does not serve Organizations {op}"),
            ),
        };
        if verdict == Verdict::Serve && response.is_error() {
            self.limits.count_error(&operation);
        }
        tracing::debug!(operation, status = response.status, "answered");
        (response, rid)
    }
}

/// The answer of a region that is not enabled for the account: the credentials are not valid
/// there (EC2's `AuthFailure`, the JSON services' `UnrecognizedClientException`).
fn region_not_enabled(headers: &HeaderMap) -> WireResponse {
    match credential(headers).map(|c| c.2) {
        Some("ec2") => ec2::error(
            401,
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
            "00000000-0000-0000-0000-000000000000",
        ),
        _ => WireResponse::json_error(
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
    }
}

async fn aws(
    State(org): State<Arc<Org>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = credential(&headers);
    let caller = org.directory.caller(signed.map(|c| c.0));
    // STS and Organizations are global: they answer in any region, as the caller's first scope.
    let global = signed.is_some_and(|c| matches!(c.2, "sts" | "organizations"));
    let region = signed.map(|c| c.1).filter(|_| !global);
    let (wire, rid) = match org.scope(caller.account(), region) {
        Some(sim) => sim.answer(&caller, &method, &uri, &headers, &body).await,
        None => (region_not_enabled(&headers), String::new()),
    };
    let status = StatusCode::from_u16(wire.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, wire.body).into_response();
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static(wire.content_type));
    if let Ok(v) = HeaderValue::from_str(&rid) {
        h.insert("x-amzn-requestid", v);
    }
    if let Some(v) = wire.error_type.and_then(|t| HeaderValue::from_str(&t).ok()) {
        h.insert("x-amzn-errortype", v);
    }
    response
}

async fn get_date(State(sim): State<Arc<Org>>) -> String {
    sim.date().to_string()
}

async fn set_date(State(sim): State<Arc<Org>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).trim().to_string();
    match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        Ok(date) => {
            sim.set_date(date);
            (StatusCode::OK, date.to_string()).into_response()
        }
        Err(_) => (
            StatusCode::BAD_REQUEST,
            format!("date '{text}' is not YYYY-MM-DD"),
        )
            .into_response(),
    }
}

async fn get_limits(State(sim): State<Arc<Org>>) -> Response {
    let body = serde_json::to_string(&sim.rates()).unwrap_or_else(|_| "{}".into());
    ([("content-type", "application/json")], body).into_response()
}

/// Replaces the API rates: `{"ssm_tps": 100, "ec2_tps": null}` (null or absent: unlimited).
async fn set_limits(State(sim): State<Arc<Org>>, body: Bytes) -> Response {
    let rates: crate::Rates = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("limits must be JSON like {{\"ssm_tps\": 100, \"ec2_tps\": null}}: {e}"),
            )
                .into_response();
        }
    };
    let valid = |r: Option<f64>| r.is_none_or(|r| r.is_finite() && r > 0.0);
    if !(valid(rates.ssm_tps) && valid(rates.ec2_tps)) {
        return (
            StatusCode::BAD_REQUEST,
            "rates must be positive numbers or null",
        )
            .into_response();
    }
    sim.set_rates(rates);
    get_limits(State(sim)).await
}

async fn get_shapes(State(sim): State<Arc<Org>>) -> Response {
    let body = serde_json::to_string(&sim.shapes()).unwrap_or_else(|_| "{}".into());
    ([("content-type", "application/json")], body).into_response()
}

/// Replaces the shape rates: `{"absent_counts_rate": 0.1}` (absent: 0).
async fn set_shapes(State(sim): State<Arc<Org>>, body: Bytes) -> Response {
    let shapes: crate::Shapes = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("shapes must be JSON like {{\"absent_counts_rate\": 0.1}}: {e}"),
            )
                .into_response();
        }
    };
    if !(0.0..=1.0).contains(&shapes.absent_counts_rate) {
        return (StatusCode::BAD_REQUEST, "rates are shares between 0 and 1").into_response();
    }
    sim.set_shapes(shapes);
    get_shapes(State(sim)).await
}

async fn stats(State(sim): State<Arc<Org>>) -> Response {
    let body = serde_json::to_string(&sim.stats()).unwrap_or_else(|_| "[]".into());
    ([("content-type", "application/json")], body).into_response()
}

/// Per scope (account, region): its requests, throttles and faults per operation.
async fn scope_stats(State(sim): State<Arc<Org>>) -> Response {
    let body = serde_json::to_string(&sim.scope_stats()).unwrap_or_else(|_| "[]".into());
    ([("content-type", "application/json")], body).into_response()
}

pub fn router(sim: Arc<Org>) -> Router {
    Router::new()
        .route("/_sim/scopes", get(scope_stats))
        .route("/_sim/date", get(get_date).put(set_date).post(set_date))
        .route(
            "/_sim/limits",
            get(get_limits).put(set_limits).post(set_limits),
        )
        .route(
            "/_sim/shapes",
            get(get_shapes).put(set_shapes).post(set_shapes),
        )
        .route("/_sim/stats", get(stats))
        .fallback(aws)
        .with_state(sim)
}

/// A simulator serving on a loopback port; dropping it (or [`RunningSim::stop`]) ends it.
pub struct RunningSim {
    pub addr: SocketAddr,
    /// The management account's scope in the first region.
    pub sim: Arc<Sim>,
    pub org: Arc<Org>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSim {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes the requests in flight, and returns.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `addr` and serves the simulator in the background.
pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<RunningSim> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let org = Arc::new(Org::new(config));
    let sim = org.home.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let app = router(org.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningSim {
        addr,
        sim,
        org,
        shutdown: Some(tx),
        task: Some(task),
    })
}
