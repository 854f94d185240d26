//! The simulator's HTTP server: the token endpoint, authentication, headers, fault
//! injection, the journal, the admin routes under `/_sim/` and the in-process handle.
//!
//! Every call except the admin routes goes through the same prelude: latency, then an
//! outage (503 HTML), then the next matching counted fault (5xx, 429, a hang, 401). API
//! calls are then authenticated, held to the per-second throttle when one is set (429
//! with `Retry-After`), counted against the quota (429 when spent), answered
//! by `api::dispatch`, possibly cut short (`malformed`) and journalled.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{UemAuth, UemConfig};
use crate::domain::{Secret, Username};
use crate::uemsim::api::{self, error_body, ApiRequest, Reply, ReplyBody};
use crate::uemsim::fault::{parse_fault, Fault, Hit};
use crate::uemsim::seed::{Seed, Staging};
use crate::uemsim::state::{
    guid, mix, unix_now, JournalEntry, RateLimit, Sim, SimDevice, SimStateView, SimUser,
};
use crate::uemsim::SimOptions;

/// Serves the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: SimOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let sim = Arc::new(build(&options)?);
    run(listener, sim, shutdown).await
}

/// Starts the simulator on `127.0.0.1:0` in a task and returns a handle to it.
pub async fn start(options: SimOptions) -> anyhow::Result<SimHandle> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the simulator to 127.0.0.1:0")?;
    let addr = listener
        .local_addr()
        .context("cannot read the simulator's address")?;
    let sim = Arc::new(build(&options)?);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, Arc::clone(&sim), async move {
        let _ = stopped.await;
    }));
    Ok(SimHandle {
        addr,
        sim,
        stop: Some(stop),
        task: Some(task),
    })
}

/// A running in-process simulator. Dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    sim: Arc<Sim>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: the API base URL (`uem.base-url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OAuth token endpoint (`uem.auth.token-url`).
    pub fn token_url(&self) -> String {
        format!("{}/connect/token", self.url())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every call so far, oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.sim.journal_since(0)
    }

    /// Empties the journal.
    pub fn clear_journal(&self) {
        self.sim.clear_journal();
    }

    /// Replaces the counted faults (and ends any outage) with these.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.sim.clear_faults();
        self.sim.add_faults(faults);
    }

    /// Adds one fault.
    pub fn add_fault(&self, fault: Fault) {
        self.sim.add_faults([fault]);
    }

    /// Removes every fault, ends any outage, sets latency to zero.
    pub fn clear_faults(&self) {
        self.sim.clear_faults();
    }

    /// Sets the quota behind the `x-ratelimit-*` headers.
    pub fn set_rate_limit(&self, limit: u64, remaining: u64, reset_in: Duration) {
        self.sim.set_rate_limit(limit, remaining, reset_in);
    }

    /// A device by numeric id.
    pub fn device(&self, id: i64) -> Option<SimDevice> {
        self.sim.lock().devices.get(&id).cloned()
    }

    /// A device by UDID (any case, with or without the hyphen) or serial number.
    pub fn find_device(&self, identifier: &str) -> Option<SimDevice> {
        let compact = |s: &str| s.replace('-', "").to_ascii_uppercase();
        let wanted = compact(identifier);
        self.sim
            .lock()
            .devices
            .values()
            .find(|d| {
                d.udid.as_deref().is_some_and(|u| compact(u) == wanted)
                    || compact(&d.serial_number) == wanted
            })
            .cloned()
    }

    /// A user by numeric id.
    pub fn user(&self, id: i64) -> Option<SimUser> {
        self.sim.lock().users.get(&id).cloned()
    }

    /// Every account with exactly this username.
    pub fn users_named(&self, username: &str) -> Vec<SimUser> {
        self.sim
            .lock()
            .users
            .values()
            .filter(|u| u.username == username)
            .cloned()
            .collect()
    }

    /// Everything `GET /_sim/state` shows.
    pub fn state(&self) -> SimStateView {
        self.sim.view()
    }

    /// A `[uem]` config for the seed's first OAuth client, with the tenant code.
    pub fn oauth_config(&self) -> Option<UemConfig> {
        let state = self.sim.lock();
        let (client_id, client_secret) = state.oauth_clients.first().cloned()?;
        Some(self.config_with(
            &state,
            UemAuth::OAuth {
                token_url: self.token_url(),
                client_id,
                client_secret: Secret::new(client_secret),
            },
        ))
    }

    /// A `[uem]` config for the seed's first Basic account, with the tenant code.
    pub fn basic_config(&self) -> Option<UemConfig> {
        let state = self.sim.lock();
        let (username, password) = state.basic_accounts.first().cloned()?;
        Some(self.config_with(
            &state,
            UemAuth::Basic {
                username,
                password: Secret::new(password),
            },
        ))
    }

    fn config_with(&self, state: &crate::uemsim::state::State, auth: UemAuth) -> UemConfig {
        let staging = state
            .users
            .values()
            .find(|u| u.staging == Staging::Multi)
            .map(|u| u.username.clone())
            .unwrap_or_else(|| "staging".to_string());
        UemConfig {
            base_url: self.url(),
            tenant_code: state.tenant_code.clone().map(Secret::new),
            staging_user: Username::new(staging),
            auth,
            connect_timeout_ms: 2_000,
            request_timeout_ms: 5_000,
            ca_file: None,
            verify_after_assign: false,
            concurrency: 4,
            preferred_security_type: None,
            organization_groups: Vec::new(),
        }
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.sim.shutdown.cancel();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("the simulator task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.sim.shutdown.cancel();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn build(options: &SimOptions) -> anyhow::Result<Sim> {
    let seed = match &options.seed {
        Some(path) => Seed::load(path)?,
        None => Seed::builtin()?,
    };
    let mut sim = Sim::new(
        seed,
        Duration::from_millis(options.latency_ms),
        options.token_lifetime,
        options.rate_limit,
        options.hang,
    );
    sim.reenrol_after = options.reenrol_after;
    sim.per_second = options.per_second;
    if let Some(rate) = options.per_second {
        sim.bucket = std::sync::Mutex::new((f64::from(rate), tokio::time::Instant::now()));
    }
    sim.add_faults(options.faults.iter().cloned());
    Ok(sim)
}

async fn run(
    listener: TcpListener,
    sim: Arc<Sim>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cancel = sim.shutdown.clone();
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "Workspace ONE simulator listening");
    let app = router(sim);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = shutdown => {}
                () = cancel.cancelled() => {}
            }
            cancel.cancel();
        })
        .await
        .context("the simulator's HTTP server failed")
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/connect/token", post(token))
        .route("/_sim/journal", get(journal).delete(clear_journal))
        .route("/_sim/state", get(state_view))
        .route("/_sim/devices/{id}", get(device_view))
        .route("/_sim/faults", post(add_faults).delete(clear_faults))
        .route("/_sim/ratelimit", post(set_rate_limit))
        .route("/_sim/webhook/{*name}", post(webhook))
        .fallback(api_call)
        .with_state(sim)
}

fn new_entry(method: &Method, uri: &Uri, auth: &str) -> JournalEntry {
    JournalEntry {
        seq: 0,
        at_ms: 0,
        method: method.as_str().to_string(),
        path: uri
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| uri.path().to_string()),
        status: 0,
        api_version: None,
        auth: auth.to_string(),
        device_id: None,
        user_id: None,
        fault: None,
        body: None,
    }
}

/// Latency, outage and counted faults. `Some` is the whole answer.
async fn prelude(
    sim: &Sim,
    method: &Method,
    path: &str,
    entry: &mut JournalEntry,
) -> Option<Response> {
    let latency = sim.latency();
    if !latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = sim.shutdown.cancelled() => {}
        }
    }
    if sim.in_outage() {
        entry.fault = Some("outage".into());
        return Some(finish(sim, entry, html_response(503, api::outage_page())));
    }
    let hit = sim.take_hit(method.as_str(), path)?;
    entry.fault = Some(hit.label());
    let response = match hit {
        Hit::Timeout => {
            // Journal it now: the client gives up and this handler is dropped.
            entry.status = 0;
            sim.record(entry.clone());
            tokio::select! {
                () = tokio::time::sleep(sim.hang) => {}
                () = sim.shutdown.cancelled() => {}
            }
            return Some(html_response(504, api::outage_page()));
        }
        Hit::ServerError(500) => json_response(
            500,
            &error_body(500, "An unexpected error occurred. Please try again later."),
        ),
        Hit::ServerError(status) => html_response(status, api::outage_page()),
        Hit::TooManyRequests(retry_after) => {
            let mut response = json_response(429, &error_body(429, "Too many requests."));
            if let Some(seconds) = retry_after {
                insert(&mut response, "retry-after", &seconds.to_string());
            }
            response
        }
        Hit::Unauthorized => unauthorized_token(),
    };
    Some(finish(sim, entry, response))
}

fn finish(sim: &Sim, entry: &mut JournalEntry, response: Response) -> Response {
    entry.status = response.status().as_u16();
    sim.record(entry.clone());
    response
}

async fn api_call(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth_label = auth_label(&headers);
    let mut entry = new_entry(&method, &uri, auth_label);
    let path = uri.path().to_string();
    if !path.to_ascii_lowercase().starts_with("/api/") {
        let response = html_response(404, api::unknown_route_page(&path));
        return finish(&sim, &mut entry, response);
    }
    let version = accept_version(&headers);
    entry.api_version = Some(version);
    if let Some(response) = prelude(&sim, &method, &path, &mut entry).await {
        return response;
    }
    if let Some(response) = auth_refusal(&sim, &headers) {
        return finish(&sim, &mut entry, response);
    }
    if let Err(wait_s) = sim.throttle() {
        // Over the tenant's per-second rate: refused before the daily quota is counted.
        entry.fault = Some("throttle".into());
        let mut response = json_response(429, &error_body(429, "API rate limit exceeded."));
        insert(&mut response, "retry-after", &wait_s.to_string());
        return finish(&sim, &mut entry, response);
    }
    let (allowed, rate) = sim.spend_quota();
    if !allowed {
        entry.fault = Some("quota".into());
        let mut response = json_response(429, &error_body(429, "API rate limit exceeded."));
        insert(
            &mut response,
            "retry-after",
            &(rate.reset_unix - unix_now()).max(1).to_string(),
        );
        add_api_headers(&mut response, &sim, &rate, version);
        return finish(&sim, &mut entry, response);
    }
    let query = parse_query(uri.query().unwrap_or_default());
    let body = String::from_utf8_lossy(&body).into_owned();
    if !body.is_empty() {
        entry.body = Some(body.clone());
    }
    let request = ApiRequest {
        method: method.as_str(),
        path: &path,
        query,
        version,
        body: &body,
    };
    let reply = api::dispatch(&sim, &request);
    entry.device_id = reply.device_id;
    entry.user_id = reply.user_id;
    let mut response = render(&sim, &method, &path, reply, &mut entry);
    add_api_headers(&mut response, &sim, &rate, version);
    finish(&sim, &mut entry, response)
}

fn render(
    sim: &Sim,
    method: &Method,
    path: &str,
    reply: Reply,
    entry: &mut JournalEntry,
) -> Response {
    let status = reply.status;
    let mut response = match reply.body {
        ReplyBody::Empty => empty_response(status),
        ReplyBody::Html(page) => html_response(status, page),
        ReplyBody::Json(body) => {
            if sim.take_malformed(method.as_str(), path) {
                entry.fault = Some("malformed".into());
                let text = body.to_string();
                let cut = text.len() / 2;
                let mut truncated = text.get(..cut).unwrap_or("{").to_string();
                truncated.push('\u{fffd}');
                text_response(status, "application/json; charset=utf-8", truncated)
            } else {
                json_response(status, &body)
            }
        }
    };
    if !reply.supported.is_empty() {
        insert(&mut response, "api-supported-versions", reply.supported);
    }
    response
}

fn add_api_headers(response: &mut Response, sim: &Sim, rate: &RateLimit, version: u8) {
    let correlation = guid(0xc0, mix(sim.elapsed_ms() ^ rate.remaining.rotate_left(17)));
    insert(response, "x-correlation-id", &correlation);
    insert(response, "x-ratelimit-limit", &rate.limit.to_string());
    insert(
        response,
        "x-ratelimit-remaining",
        &rate.remaining.to_string(),
    );
    insert(response, "x-ratelimit-reset", &rate.reset_unix.to_string());
    insert(response, "x-api-version", &format!("v{version}"));
    let skew = sim.clock_skew_s();
    if skew != 0 {
        // hyper adds the true `Date` only when the answer has none.
        let date = chrono::Utc::now() + chrono::Duration::seconds(skew);
        insert(
            response,
            "date",
            &date.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        );
    }
    insert(response, "x-content-type-options", "nosniff");
    insert(
        response,
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    );
}

/// `Accept: application/json;version=N` → N; no version means 1.
fn accept_version(headers: &HeaderMap) -> u8 {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split([';', ',']))
        .filter_map(|part| {
            let (name, value) = part.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("version")
                .then(|| value.trim().trim_matches('"').parse::<u8>().ok())?
        })
        .next()
        .unwrap_or(1)
}

fn auth_label(headers: &HeaderMap) -> &'static str {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if value.starts_with("bearer ") {
        "bearer"
    } else if value.starts_with("basic ") {
        "basic"
    } else {
        "none"
    }
}

/// Checks Bearer (tenant code optional) or Basic + `aw-tenant-code`; `Some` is the refusal.
fn auth_refusal(sim: &Sim, headers: &HeaderMap) -> Option<Response> {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_string();
    let sent_tenant = headers
        .get("aw-tenant-code")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .map(str::to_string);
    let (tenant_code, accounts) = {
        let state = sim.lock();
        (state.tenant_code.clone(), state.basic_accounts.clone())
    };
    let tenant_refused = |sent: &str| {
        json_response(
            403,
            &error_body(
                1013,
                &format!("Tenant code {sent} does not identify an Organization Group."),
            ),
        )
    };
    let (scheme, credentials) = authorization
        .split_once(' ')
        .unwrap_or((authorization.as_str(), ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        if !sim.token_valid(credentials.trim()) {
            return Some(unauthorized_token());
        }
        // [I] Bearer callers may omit the tenant code; a wrong one is still refused.
        if let (Some(sent), Some(expected)) = (&sent_tenant, &tenant_code) {
            if sent != expected {
                return Some(tenant_refused(sent));
            }
        }
        return None;
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(credentials.trim())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_default();
        let (user, password) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
        if !accounts.iter().any(|(u, p)| u == user && p == password) {
            return Some(json_response(
                401,
                &error_body(1005, &format!("An error occurred while validating remote service client credentials or user not found : {user}")),
            ));
        }
        let sent = sent_tenant.unwrap_or_default();
        if tenant_code
            .as_deref()
            .is_some_and(|expected| expected != sent)
        {
            return Some(tenant_refused(&sent));
        }
        return None;
    }
    Some(json_response(
        401,
        &error_body(1005, "An error occurred while validating remote service client credentials or user not found : "),
    ))
}

/// An expired or revoked token: 401, empty body, `WWW-Authenticate` (assumed; unverified).
fn unauthorized_token() -> Response {
    let mut response = empty_response(401);
    insert(
        &mut response,
        "www-authenticate",
        "Bearer error=\"invalid_token\"",
    );
    response
}

async fn token(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut entry = new_entry(&method, &uri, "client-credentials");
    if let Some(response) = prelude(&sim, &method, uri.path(), &mut entry).await {
        return response;
    }
    let form: HashMap<String, String> = parse_query(&String::from_utf8_lossy(&body))
        .into_iter()
        .collect();
    let oauth_error =
        |status: u16, error: &str| json_response(status, &serde_json::json!({ "error": error }));
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return finish(&sim, &mut entry, oauth_error(400, "unsupported_grant_type"));
    }
    // The client may authenticate with form fields or with HTTP Basic.
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|v| base64_decode(v.trim()))
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            text.split_once(':')
                .map(|(id, secret)| (id.to_string(), secret.to_string()))
        });
    let (client_id, client_secret) = match (form.get("client_id"), form.get("client_secret"), basic)
    {
        (Some(id), Some(secret), _) => (id.clone(), secret.clone()),
        (_, _, Some(pair)) => pair,
        _ => return finish(&sim, &mut entry, oauth_error(400, "invalid_request")),
    };
    let known = sim
        .lock()
        .oauth_clients
        .iter()
        .any(|(id, secret)| *id == client_id && *secret == client_secret);
    if !known {
        return finish(&sim, &mut entry, oauth_error(400, "invalid_client"));
    }
    let (access_token, expires_in) = sim.issue_token();
    let body = serde_json::json!({ "access_token": access_token, "expires_in": expires_in, "token_type": "Bearer", "scope": "api" });
    let response = if sim.take_malformed(method.as_str(), uri.path()) {
        entry.fault = Some("malformed".into());
        text_response(
            200,
            "application/json; charset=utf-8",
            "{\"access_token\": \"".to_string(),
        )
    } else {
        json_response(200, &body)
    };
    finish(&sim, &mut entry, response)
}

#[derive(Deserialize)]
struct SinceQuery {
    since: Option<u64>,
}

async fn journal(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<SinceQuery>,
) -> Json<Vec<JournalEntry>> {
    Json(sim.journal_since(query.since.unwrap_or(0)))
}

async fn clear_journal(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.clear_journal();
    StatusCode::NO_CONTENT
}

async fn state_view(State(sim): State<Arc<Sim>>) -> Json<SimStateView> {
    Json(sim.view())
}

async fn device_view(State(sim): State<Arc<Sim>>, Path(id): Path<i64>) -> Response {
    match sim.lock().devices.get(&id).cloned() {
        Some(device) => Json(device).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no device {id} in the simulator\n"),
        )
            .into_response(),
    }
}

/// `POST /_sim/faults` with `["500:3", "429-retry-after:2"]` or `{"faults": [...]}`.
async fn add_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("send a JSON list of faults, e.g. [\"500:3\"]: {err}\n"),
            )
                .into_response()
        }
    };
    let list = match &value {
        serde_json::Value::Array(items) => items.clone(),
        serde_json::Value::Object(map) => map
            .get("faults")
            .and_then(|f| f.as_array())
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut faults = Vec::new();
    for item in &list {
        let Some(text) = item.as_str() else {
            return (
                StatusCode::BAD_REQUEST,
                format!("{item} is not a fault string\n"),
            )
                .into_response();
        };
        match parse_fault(text) {
            Ok(fault) => faults.push(fault),
            Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
        }
    }
    let names: Vec<String> = faults.iter().map(ToString::to_string).collect();
    sim.add_faults(faults);
    tracing::info!(faults = ?names, "simulator faults added");
    Json(names).into_response()
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.clear_faults();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RateLimitBody {
    limit: u64,
    remaining: u64,
    #[serde(default = "one_day")]
    reset_in_seconds: u64,
}

fn one_day() -> u64 {
    86_400
}

async fn set_rate_limit(
    State(sim): State<Arc<Sim>>,
    Json(body): Json<RateLimitBody>,
) -> Json<RateLimit> {
    sim.set_rate_limit(
        body.limit,
        body.remaining,
        Duration::from_secs(body.reset_in_seconds),
    );
    Json(sim.view().rate_limit)
}

#[derive(Deserialize)]
struct WebhookQuery {
    status: Option<u16>,
}

/// A webhook receiver for tests: journals the body, answers `?status=` (200 by default).
async fn webhook(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    Query(query): Query<WebhookQuery>,
    body: Bytes,
) -> Response {
    let mut entry = new_entry(&method, &uri, "none");
    entry.body = Some(String::from_utf8_lossy(&body).into_owned());
    let status = query.status.unwrap_or(200);
    let response = if status < 400 {
        empty_response(status)
    } else {
        json_response(
            status,
            &serde_json::json!({ "message": format!("webhook receiver answered {status}") }),
        )
    };
    finish(&sim, &mut entry, response)
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    text_response(status, "application/json; charset=utf-8", body.to_string())
}

fn html_response(status: u16, page: String) -> Response {
    text_response(status, "text/html; charset=utf-8", page)
}

fn text_response(status: u16, content_type: &str, body: String) -> Response {
    let mut response = (status_code(status), body).into_response();
    insert(&mut response, "content-type", content_type);
    response
}

fn empty_response(status: u16) -> Response {
    status_code(status).into_response()
}

fn insert(response: &mut Response, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
        response.headers_mut().insert(name, value);
    }
}

/// Decodes `a=1&b=x%20y` with lower-cased names (the API ignores their case).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(name).to_ascii_lowercase(),
                percent_decode(value),
            )
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_base64_decoding() {
        assert_eq!(
            parse_query("SearchBy=Udid&id=00008110-000A%2B1&x=a+b&flag"),
            vec![
                ("searchby".to_string(), "Udid".to_string()),
                ("id".to_string(), "00008110-000A+1".to_string()),
                ("x".to_string(), "a b".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(
            base64_decode("YXBpLWFkbWluOnB3"),
            Some(b"api-admin:pw".to_vec())
        );
        assert_eq!(base64_decode("YQ=="), Some(b"a".to_vec()));
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn accept_versions() {
        let mut headers = HeaderMap::new();
        assert_eq!(accept_version(&headers), 1);
        headers.insert(
            "accept",
            HeaderValue::from_static("application/json;version=2"),
        );
        assert_eq!(accept_version(&headers), 2);
        headers.insert(
            "accept",
            HeaderValue::from_static("application/json; Version = 3"),
        );
        assert_eq!(accept_version(&headers), 3);
    }
}
