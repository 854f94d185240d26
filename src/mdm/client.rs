//! The HTTP side of the Workspace ONE client: building reqwest, authentication, the
//! per-endpoint `Accept` version, rate-limit pacing and turning answers into [`MdmError`]s.
//!
//! Every API call goes through [`UemClient::exchange`]. It waits the pacing delay when
//! `x-ratelimit-remaining` runs low, adds `Authorization` (a cached OAuth token or Basic)
//! and `aw-tenant-code` when configured, and retries exactly once on a 401 with a freshly
//! fetched token. The token is renewed before it expires: five minutes before for the
//! usual one-hour token, half its lifetime for short-lived ones (the simulator's).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;

use crate::config::{UemAuth, UemConfig};
use crate::domain::{DeviceKey, Secret, Username};
use crate::mdm::error::{ApiErrorBody, MdmError};
use crate::mdm::model::TokenResponse;

/// Renew a token this long before it expires (capped at half its lifetime).
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Start pacing when fewer than this fraction (1/N) of the quota is left.
const PACING_FRACTION: u64 = 10;
/// Shortest pacing delay once pacing starts.
const PACING_MIN: Duration = Duration::from_millis(20);
/// Longest pacing delay: calls slow down, they never stall.
const PACING_MAX: Duration = Duration::from_secs(2);
/// Longest `Retry-After` honoured; a longer one is clamped so the outbox keeps probing.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// The Workspace ONE UEM REST client. Cheap to clone: clones share the token, the id
/// caches and the rate-limit state.
#[derive(Clone)]
pub struct UemClient {
    pub(crate) inner: Arc<Inner>,
}

/// What the client knows about its own health, for metrics and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHealth {
    /// HTTP requests sent to the API (token requests not included).
    pub api_calls: u64,
    /// OAuth tokens fetched.
    pub token_fetches: u64,
    /// The last `x-ratelimit-limit` seen.
    pub rate_limit_limit: Option<u64>,
    /// The last `x-ratelimit-remaining` seen.
    pub rate_limit_remaining: Option<u64>,
    /// The last `x-ratelimit-reset` seen (Unix seconds).
    pub rate_limit_reset: Option<i64>,
    /// The delay currently added before each call because the quota runs low.
    pub pacing_delay: Duration,
    /// The last `x-correlation-id`, for support cases.
    pub last_correlation_id: Option<String>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    base_url: String,
    auth: Auth,
    tenant_code: Option<Secret>,
    pub(crate) staging_user: Username,
    pub(crate) verify_after_assign: bool,
    pub(crate) preferred_security_type: Option<i64>,
    pub(crate) caches: Mutex<Caches>,
    rate: Mutex<RateState>,
    api_calls: AtomicU64,
    token_fetches: AtomicU64,
    /// Tokens handed out recently, so that a server echoing one back cannot leak it.
    recent_tokens: Mutex<Vec<String>>,
}

/// Id caches: a warm check-out needs no lookups, only the PATCH.
#[derive(Debug, Default)]
pub(crate) struct Caches {
    pub(crate) devices: HashMap<DeviceKey, i64>,
    pub(crate) users: HashMap<Username, i64>,
}

#[derive(Debug, Default)]
struct RateState {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_unix: Option<i64>,
    correlation_id: Option<String>,
    /// The last `Date` header (server Unix seconds) and the local Unix seconds then.
    server_date: Option<(i64, i64)>,
}

enum Auth {
    OAuth {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        token: tokio::sync::Mutex<Option<CachedToken>>,
    },
    Basic {
        username: String,
        password: Secret,
    },
}

struct CachedToken {
    value: Secret,
    renew_at: Instant,
}

/// A non-error answer, or an error answer the caller wants to look at itself.
pub(crate) struct ApiResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl fmt::Debug for UemClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.inner.auth {
            Auth::OAuth { client_id, .. } => format!("oauth client {client_id}"),
            Auth::Basic { username, .. } => format!("basic {username}"),
        };
        f.debug_struct("UemClient")
            .field("base_url", &self.inner.base_url)
            .field("auth", &auth)
            .field(
                "tenant_code",
                &self.inner.tenant_code.as_ref().map(|_| "***"),
            )
            .finish_non_exhaustive()
    }
}

impl UemClient {
    /// Builds the client: timeouts, the optional extra CA (`uem.ca-file`), and the
    /// standard proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`),
    /// which reqwest reads from the environment. No request is sent here.
    pub fn new(config: &UemConfig) -> Result<UemClient, MdmError> {
        let base_url = config.base_url.trim().trim_end_matches('/').to_string();
        if reqwest::Url::parse(&base_url).is_err() {
            return Err(MdmError::Setup {
                key: "uem.base-url",
                detail: format!("{base_url:?} is not a URL: write the tenant's API server, e.g. https://as1234.awmdm.com"),
            });
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
            .timeout(Duration::from_millis(config.request_timeout_ms.max(1)))
            .user_agent(concat!("badgedock/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(redirect_policy(config));
        if let Some(ca_file) = &config.ca_file {
            let pem = std::fs::read(ca_file).map_err(|err| MdmError::Setup {
                key: "uem.ca-file",
                detail: format!("cannot read {}: {err}", ca_file.display()),
            })?;
            let certificates =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| MdmError::Setup {
                    key: "uem.ca-file",
                    detail: format!(
                        "{} is not a PEM certificate bundle: {err}",
                        ca_file.display()
                    ),
                })?;
            if certificates.is_empty() {
                return Err(MdmError::Setup {
                    key: "uem.ca-file",
                    detail: format!("{} holds no PEM certificate", ca_file.display()),
                });
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|err| MdmError::Setup {
            key: "uem",
            detail: format!("cannot build the HTTP client: {}", error_chain(&err)),
        })?;
        let auth = match &config.auth {
            UemAuth::OAuth {
                token_url,
                client_id,
                client_secret,
            } => {
                if reqwest::Url::parse(token_url).is_err() {
                    return Err(MdmError::Setup {
                        key: "uem.auth.token-url",
                        detail: format!("{token_url:?} is not a URL, e.g. https://na.uemauth.workspaceone.com/connect/token"),
                    });
                }
                Auth::OAuth {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    token: tokio::sync::Mutex::new(None),
                }
            }
            UemAuth::Basic { username, password } => Auth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
        };
        Ok(UemClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                auth,
                tenant_code: config.tenant_code.clone(),
                staging_user: config.staging_user.clone(),
                verify_after_assign: config.verify_after_assign,
                preferred_security_type: config.preferred_security_type,
                caches: Mutex::new(Caches::default()),
                rate: Mutex::new(RateState::default()),
                api_calls: AtomicU64::new(0),
                token_fetches: AtomicU64::new(0),
                recent_tokens: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Counters, the last rate-limit headers and the current pacing delay.
    pub fn health(&self) -> ClientHealth {
        let rate = lock(&self.inner.rate);
        ClientHealth {
            api_calls: self.inner.api_calls.load(Ordering::Relaxed),
            token_fetches: self.inner.token_fetches.load(Ordering::Relaxed),
            rate_limit_limit: rate.limit,
            rate_limit_remaining: rate.remaining,
            rate_limit_reset: rate.reset_unix,
            pacing_delay: pacing_delay(&rate, unix_now()),
            last_correlation_id: rate.correlation_id.clone(),
        }
    }

    /// Workspace ONE's clock minus ours, in seconds, from the `Date` header of the last
    /// API answer (`None` before any answer with a readable `Date`).
    pub fn server_clock_skew(&self) -> Option<i64> {
        lock(&self.inner.rate)
            .server_date
            .map(|(server, local)| server - local)
    }

    /// The multi-user staging account this client checks devices in to.
    pub fn staging_user(&self) -> &Username {
        &self.inner.staging_user
    }

    /// Fetches a fresh OAuth token now, so that a bad client id, secret or token URL is
    /// told apart from a bad tenant code. `Ok(false)` with Basic authentication (no token
    /// call exists; the credentials are checked by the first API call).
    pub async fn check_token(&self) -> Result<bool, MdmError> {
        if let Auth::OAuth { token, .. } = &self.inner.auth {
            token.lock().await.take();
            self.token("check the credentials").await?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Forgets every cached device and user id (the next calls look them up again).
    pub fn clear_caches(&self) {
        let mut caches = lock(&self.inner.caches);
        caches.devices.clear();
        caches.users.clear();
    }

    /// Sends one API request and returns the answer, whatever its status, after the
    /// single 401 retry. Transport failures become [`MdmError`]s.
    pub(crate) async fn exchange(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        version: u8,
    ) -> Result<ApiResponse, MdmError> {
        self.exchange_with(operation, method, path, query, version, None)
            .await
    }

    /// [`UemClient::exchange`] with a JSON body.
    pub(crate) async fn exchange_with(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        version: u8,
        body: Option<&str>,
    ) -> Result<ApiResponse, MdmError> {
        let url = format!("{}{}", self.inner.base_url, path);
        let mut retried_unauthorized = false;
        loop {
            let delay = pacing_delay(&lock(&self.inner.rate), unix_now());
            if !delay.is_zero() {
                tracing::debug!(
                    delay_ms = delay.as_millis() as u64,
                    "rate-limit quota low, pacing"
                );
                tokio::time::sleep(delay).await;
            }
            let mut request = self
                .inner
                .http
                .request(method.clone(), &url)
                .header(ACCEPT, format!("application/json;version={version}"));
            if !query.is_empty() {
                request = request.query(query);
            }
            if matches!(method, Method::POST | Method::PATCH | Method::PUT) {
                request = request.header(CONTENT_TYPE, "application/json");
            }
            if let Some(body) = body {
                request = request.body(body.to_string());
            }
            if let Some(code) = &self.inner.tenant_code {
                request = request.header("aw-tenant-code", sensitive(code.expose()));
            }
            let token_used = match &self.inner.auth {
                Auth::OAuth { .. } => {
                    let token = self.token(operation).await?;
                    request = request.bearer_auth(token.expose());
                    Some(token)
                }
                Auth::Basic { username, password } => {
                    request = request.basic_auth(username, Some(password.expose()));
                    None
                }
            };
            let response = request
                .send()
                .await
                .map_err(|err| transport_error(operation, &err))?;
            self.inner.api_calls.fetch_add(1, Ordering::Relaxed);
            let status = response.status();
            self.observe_rate_headers(response.headers());
            let retry_after = retry_after(response.headers());
            let body = response
                .bytes()
                .await
                .map_err(|err| transport_error(operation, &err))?
                .to_vec();
            if status == StatusCode::UNAUTHORIZED && !retried_unauthorized {
                if let Some(token) = token_used {
                    tracing::info!(
                        operation,
                        "Workspace ONE answered 401; renewing the token and retrying once"
                    );
                    self.forget_token(&token).await;
                    retried_unauthorized = true;
                    continue;
                }
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let retry_after = retry_after.or_else(|| self.quota_reset_wait());
                tracing::warn!(
                    operation,
                    retry_after_s = retry_after.map(|d| d.as_secs()),
                    "Workspace ONE is rate limiting"
                );
                return Err(MdmError::RateLimited {
                    operation: operation.to_string(),
                    retry_after,
                });
            }
            return Ok(ApiResponse { status, body });
        }
    }

    /// Like [`UemClient::exchange`], but any status outside 2xx is an error.
    pub(crate) async fn call(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        version: u8,
    ) -> Result<ApiResponse, MdmError> {
        let response = self
            .exchange(operation, method, path, query, version)
            .await?;
        if response.status.is_success() {
            Ok(response)
        } else {
            Err(self.status_error(operation, response.status, &response.body))
        }
    }

    /// POSTs a JSON body to a URL outside Workspace ONE (a webhook). No Workspace ONE
    /// credentials are sent; the error names only the host, since webhook URLs often
    /// carry a token in their path or query.
    pub(crate) async fn post_webhook(&self, url: &str, body: &str) -> Result<(), MdmError> {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "an unparsable URL".to_string());
        let operation = format!("POST webhook to {host}");
        let response = self
            .inner
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|err| transport_error(&operation, &err))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|err| transport_error(&operation, &err))?
            .to_vec();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(MdmError::RateLimited {
                operation,
                retry_after,
            });
        }
        let parsed = ApiErrorBody::parse(&bytes);
        let message = scrub(&parsed.message, &[url]);
        Err(match status.as_u16() {
            401 | 403 => MdmError::Unauthorized {
                operation,
                status: status.as_u16(),
                error_code: parsed.error_code,
                message,
                config_key: "the webhook URL in [workflow] (its credentials)",
            },
            408 => MdmError::Timeout { operation },
            code if code >= 500 => MdmError::ServerError {
                operation,
                status: code,
                error_code: parsed.error_code,
                message,
            },
            code => MdmError::Rejected {
                operation,
                status: code,
                error_code: parsed.error_code,
                message,
            },
        })
    }

    /// Turns a non-2xx answer into the error the caller acts on.
    pub(crate) fn status_error(
        &self,
        operation: &str,
        status: StatusCode,
        body: &[u8],
    ) -> MdmError {
        let parsed = ApiErrorBody::parse(body);
        let message = self.scrub(&parsed.message);
        let operation = operation.to_string();
        let code = status.as_u16();
        match code {
            401 => MdmError::Unauthorized {
                operation,
                status: code,
                error_code: parsed.error_code,
                message,
                config_key: match self.inner.auth {
                    Auth::OAuth { .. } => "uem.auth.client-id and uem.auth.client-secret-file",
                    Auth::Basic { .. } => "uem.auth.username and uem.auth.password-file",
                },
            },
            403 => MdmError::Unauthorized {
                operation,
                status: code,
                error_code: parsed.error_code,
                message,
                config_key: match (parsed.error_code, &self.inner.auth) {
                    (Some(1013), _) => "uem.tenant-code-file (the REST API key of the organization group)",
                    (_, Auth::OAuth { .. }) => {
                        "uem.auth.client-id (the OAuth client's role needs device and user management rights) and uem.tenant-code-file"
                    }
                    (_, Auth::Basic { .. }) => {
                        "uem.auth.username (the admin's role needs REST API access) and uem.tenant-code-file"
                    }
                },
            },
            408 => MdmError::Timeout { operation },
            429 => MdmError::RateLimited {
                operation,
                retry_after: None,
            },
            500..=599 => MdmError::ServerError {
                operation,
                status: code,
                error_code: parsed.error_code,
                message,
            },
            // An HTML page is not Workspace ONE's answer but a proxy's or a load balancer's
            // (or IIS's for an unknown route): transient-looking, so retried, never failed
            // for good; the message says what to check if it persists.
            400..=499 if parsed.kind == crate::mdm::error::BodyKind::Html => MdmError::ServerError {
                operation,
                status: code,
                error_code: parsed.error_code,
                message: format!(
                    "{message} (an HTML error page, not a Workspace ONE answer: a proxy or load balancer, or no such route; if it persists check uem.base-url)"
                ),
            },
            400..=499 => MdmError::Rejected {
                operation,
                status: code,
                error_code: parsed.error_code,
                message,
            },
            _ => MdmError::BadResponse {
                operation,
                detail: format!("unexpected HTTP {code}: {message}"),
            },
        }
    }

    /// Removes every known secret from text a server sent back.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<String> = Vec::new();
        if let Some(code) = &self.inner.tenant_code {
            secrets.push(code.expose().to_string());
        }
        match &self.inner.auth {
            Auth::OAuth { client_secret, .. } => secrets.push(client_secret.expose().to_string()),
            Auth::Basic { password, .. } => secrets.push(password.expose().to_string()),
        }
        secrets.extend(lock(&self.inner.recent_tokens).iter().cloned());
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        scrub(text, &refs)
    }

    async fn token(&self, operation: &str) -> Result<Secret, MdmError> {
        let Auth::OAuth {
            token_url,
            client_id,
            client_secret,
            token,
        } = &self.inner.auth
        else {
            return Err(MdmError::Setup {
                key: "uem.auth.kind",
                detail: "a token was asked for with basic authentication".into(),
            });
        };
        // Held across the fetch on purpose: concurrent callers wait for one fetch.
        let mut cached = token.lock().await;
        if let Some(current) = cached.as_ref() {
            if Instant::now() < current.renew_at {
                return Ok(current.value.clone());
            }
        }
        let operation = format!("fetch an OAuth token for {operation}");
        let response = self
            .inner
            .http
            .post(token_url)
            .header(ACCEPT, "application/json")
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.expose()),
            ])
            .send()
            .await
            .map_err(|err| transport_error(&operation, &err))?;
        self.inner.token_fetches.fetch_add(1, Ordering::Relaxed);
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|err| transport_error(&operation, &err))?
            .to_vec();
        if !status.is_success() {
            let parsed = ApiErrorBody::parse(&body);
            let message = self.scrub(&parsed.message);
            return Err(match status.as_u16() {
                400 | 401 | 403 => MdmError::Unauthorized {
                    operation,
                    status: status.as_u16(),
                    error_code: parsed.error_code,
                    message,
                    config_key: "uem.auth.client-id and uem.auth.client-secret-file",
                },
                404 | 405 => MdmError::Unauthorized {
                    operation,
                    status: status.as_u16(),
                    error_code: parsed.error_code,
                    message,
                    config_key: "uem.auth.token-url (the region's https://…uemauth…/connect/token)",
                },
                429 => MdmError::RateLimited {
                    operation,
                    retry_after,
                },
                _ => MdmError::ServerError {
                    operation,
                    status: status.as_u16(),
                    error_code: parsed.error_code,
                    message,
                },
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|err| MdmError::BadResponse {
                operation: operation.clone(),
                detail: format!("the token answer is not the expected JSON ({err})"),
            })?;
        if parsed.access_token.trim().is_empty() {
            return Err(MdmError::BadResponse {
                operation,
                detail: "the token answer has an empty access_token".into(),
            });
        }
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600).max(1));
        let margin = TOKEN_RENEW_MARGIN.min(lifetime / 2);
        let value = Secret::new(parsed.access_token);
        {
            let mut recent = lock(&self.inner.recent_tokens);
            recent.push(value.expose().to_string());
            if recent.len() > 4 {
                recent.remove(0);
            }
        }
        tracing::debug!(lifetime_s = lifetime.as_secs(), "fetched an OAuth token");
        *cached = Some(CachedToken {
            value: value.clone(),
            renew_at: Instant::now() + lifetime - margin,
        });
        Ok(value)
    }

    async fn forget_token(&self, used: &Secret) {
        if let Auth::OAuth { token, .. } = &self.inner.auth {
            let mut cached = token.lock().await;
            if cached
                .as_ref()
                .is_some_and(|current| current.value == *used)
            {
                *cached = None;
            }
        }
    }

    fn observe_rate_headers(&self, headers: &HeaderMap) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let mut rate = lock(&self.inner.rate);
        if let Some(limit) = number("x-ratelimit-limit") {
            rate.limit = u64::try_from(limit).ok();
        }
        if let Some(remaining) = number("x-ratelimit-remaining") {
            rate.remaining = Some(u64::try_from(remaining).unwrap_or(0));
        }
        if let Some(reset) = number("x-ratelimit-reset") {
            rate.reset_unix = Some(reset);
        }
        if let Some(date) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v.trim()).ok())
        {
            rate.server_date = Some((date.timestamp(), unix_now()));
        }
        if let Some(id) = headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
        {
            rate.correlation_id = Some(id.to_string());
        }
    }

    /// When the quota is spent and the reset time is known, the wait until then.
    fn quota_reset_wait(&self) -> Option<Duration> {
        let rate = lock(&self.inner.rate);
        if rate.remaining != Some(0) {
            return None;
        }
        let wait = rate.reset_unix? - unix_now();
        (wait > 0).then(|| Duration::from_secs(wait.unsigned_abs()).min(RETRY_AFTER_MAX))
    }
}

/// The delay before the next call: none while more than 1/10 of the quota is left, then
/// the time to the reset spread over the calls left, between 20 ms and 2 s.
fn pacing_delay(rate: &RateState, now_unix: i64) -> Duration {
    let (Some(limit), Some(remaining)) = (rate.limit, rate.remaining) else {
        return Duration::ZERO;
    };
    if limit == 0 || remaining.saturating_mul(PACING_FRACTION) > limit {
        return Duration::ZERO;
    }
    match rate.reset_unix {
        Some(reset) if reset > now_unix => {
            let window = Duration::from_secs((reset - now_unix).unsigned_abs());
            let per_call = window / u32::try_from(remaining.saturating_add(1)).unwrap_or(u32::MAX);
            per_call.clamp(PACING_MIN, PACING_MAX)
        }
        // The reset has passed: the quota has been refilled since the last answer.
        Some(_) => Duration::ZERO,
        None if remaining == 0 => PACING_MAX,
        None => PACING_MIN * 10,
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().to_string();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(RETRY_AFTER_MAX));
    }
    let when = chrono::DateTime::parse_from_rfc2822(&value).ok()?;
    let wait = when.timestamp() - unix_now();
    Some(Duration::from_secs(wait.max(0).unsigned_abs()).min(RETRY_AFTER_MAX))
}

/// Redirects are never followed: reqwest would resend the `aw-tenant-code` header (and,
/// on a 307/308 of the token call, the client secret in the body) to wherever the
/// answer points. The request fails instead, naming where it was sent (scheme, host and
/// port only) and whether that is one of the configured hosts, so the operator can fix
/// `uem.base-url` or `uem.auth.token-url`.
fn redirect_policy(config: &UemConfig) -> reqwest::redirect::Policy {
    let origin = |url: &str| {
        reqwest::Url::parse(url).ok().map(|url| {
            (
                url.host_str().map(str::to_ascii_lowercase),
                url.port_or_known_default(),
            )
        })
    };
    let mut configured = vec![origin(&config.base_url)];
    if let UemAuth::OAuth { token_url, .. } = &config.auth {
        configured.push(origin(token_url));
    }
    reqwest::redirect::Policy::custom(move |attempt| {
        let target = attempt.url();
        let host = target.host_str().unwrap_or("?").to_ascii_lowercase();
        let port = target.port_or_known_default();
        let shown = match port {
            Some(port) => format!("{}://{host}:{port}", target.scheme()),
            None => format!("{}://{host}", target.scheme()),
        };
        let on_configured_host = configured
            .iter()
            .flatten()
            .any(|(h, p)| h.as_deref() == Some(host.as_str()) && *p == port);
        let message = if on_configured_host {
            format!("Workspace ONE answered with a redirect (HTTP {}) to another path on {shown}; badgedock does not follow redirects, so the tenant code and credentials are never sent twice: set uem.base-url or uem.auth.token-url to the final address", attempt.status().as_u16())
        } else {
            format!("Workspace ONE answered with a redirect (HTTP {}) to {shown}, which is not a configured host; it was not followed and no credential was sent there: set uem.base-url or uem.auth.token-url to the real address if that host is legitimate", attempt.status().as_u16())
        };
        attempt.error(RedirectRefused(message))
    })
}

/// Why a redirect was not followed.
#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedirectRefused {}

fn transport_error(operation: &str, err: &reqwest::Error) -> MdmError {
    if err.is_timeout() {
        return MdmError::Timeout {
            operation: operation.to_string(),
        };
    }
    MdmError::Unreachable {
        operation: operation.to_string(),
        detail: error_chain(err),
    }
}

/// The error and its sources, without the URL (which may carry a webhook token).
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts = vec![strip_url(&err.to_string())];
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = strip_url(&cause.to_string());
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn strip_url(text: &str) -> String {
    match text.find(" for url (") {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if secret.len() >= 3 {
            out = out.replace(secret, "***");
        }
    }
    out
}

fn sensitive(value: &str) -> HeaderValue {
    let mut header = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""));
    header.set_sensitive(true);
    header
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Locks a std mutex, recovering from poisoning: the guarded data are caches and
/// counters that stay valid even if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(limit: u64, remaining: u64, reset: Option<i64>) -> RateState {
        RateState {
            limit: Some(limit),
            remaining: Some(remaining),
            reset_unix: reset,
            correlation_id: None,
            server_date: None,
        }
    }

    #[test]
    fn pacing_starts_below_a_tenth_of_the_quota() {
        assert_eq!(
            pacing_delay(&rate(1000, 500, Some(2000)), 1000),
            Duration::ZERO
        );
        assert_eq!(
            pacing_delay(&rate(1000, 101, Some(2000)), 1000),
            Duration::ZERO
        );
        // 1000 s left, 99 calls left: about 10 s each, clamped to 2 s.
        assert_eq!(pacing_delay(&rate(1000, 99, Some(2000)), 1000), PACING_MAX);
        // 5 s left, 99 calls: 50 ms each.
        assert_eq!(
            pacing_delay(&rate(1000, 99, Some(1005)), 1000),
            Duration::from_millis(50)
        );
        // The reset is past: the quota has been refilled.
        assert_eq!(
            pacing_delay(&rate(1000, 0, Some(900)), 1000),
            Duration::ZERO
        );
        assert_eq!(pacing_delay(&RateState::default(), 1000), Duration::ZERO);
    }

    #[test]
    fn scrub_removes_secrets() {
        assert_eq!(
            scrub("Tenant code ABC123 does not", &["ABC123"]),
            "Tenant code *** does not"
        );
        assert_eq!(
            strip_url("error sending request for url (http://x/y?token=1)"),
            "error sending request"
        );
    }

    #[test]
    fn retry_after_forms() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
