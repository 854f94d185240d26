//! The fleet console: `badgedock fleet serve --config FILE`. An axum application
//! reading the fleet store as the console role and rendering HTML on the server (maud).
//!
//! Sign-in: a local users file (argon2 hashes) or a reverse proxy's header, trusted
//! only from the configured proxy addresses. Sessions live in memory behind an
//! HttpOnly, SameSite=Strict cookie; every form carries the session's CSRF token
//! (the sign-in form a pre-session token, double-submitted as a cookie). Viewers read;
//! admins also queue admin requests, which the owning station carries out. No page
//! shows a badge number (the fleet store only holds redacted ones) or a secret.

pub mod config;
mod data;
mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::{PasswordHash, PasswordVerifier};
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio_postgres::Client;

pub use config::{ConsoleConfig, Role};

const SESSION_COOKIE: &str = "bd_session";
const PRE_COOKIE: &str = "bd_pre";
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

#[derive(Clone)]
struct Session {
    user: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

struct App {
    config: ConsoleConfig,
    client: Mutex<Option<Arc<Client>>>,
    sessions: std::sync::Mutex<HashMap<String, Session>>,
}

type Shared = Arc<App>;

fn token() -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// Constant-time comparison for tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why a page could not be served.
enum PageError {
    SignIn,
    Forbidden(&'static str),
    Fleet(String),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => Redirect::to("/login").into_response(),
            PageError::Forbidden(why) => (StatusCode::FORBIDDEN, pages::layout("Not allowed", None, false, maud::html! { p { (why) } })).into_response(),
            PageError::Fleet(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                pages::layout(
                    "Fleet store unavailable",
                    None,
                    true,
                    maud::html! { p.note role="alert" { "The fleet database cannot be read right now: " (message) ". This page retries every 15 seconds." } },
                ),
            )
                .into_response(),
        }
    }
}

impl App {
    async fn db(&self) -> Result<Arc<Client>, PageError> {
        let mut guard = self.client.lock().await;
        if let Some(client) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(
            super::connect(&self.config.fleet)
                .await
                .map_err(|err| PageError::Fleet(err.to_string()))?,
        );
        *guard = Some(Arc::clone(&client));
        Ok(client)
    }

    fn session(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<(Option<String>, Session), PageError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            if let Some(session) = sessions.get(&id) {
                return Ok((None, session.clone()));
            }
        }
        // Single sign-on: only a trusted proxy may name the user.
        if let Some(proxy) = &self.config.proxy {
            if let Some(user) = headers
                .get(proxy.header.as_str())
                .and_then(|v| v.to_str().ok())
            {
                let user = user.trim();
                if proxy.trusted.contains(&peer.ip()) && !user.is_empty() {
                    let role = if proxy.admins.iter().any(|a| a == user) {
                        Role::Admin
                    } else {
                        Role::Viewer
                    };
                    let session = Session {
                        user: user.to_string(),
                        role,
                        csrf: token(),
                        expires: now + SESSION_TTL,
                    };
                    let id = token();
                    sessions.insert(id.clone(), session.clone());
                    tracing::info!(user = %user, "console sign-in through the proxy");
                    return Ok((Some(id), session));
                }
                tracing::warn!(peer = %peer, header = %proxy.header, "sign-on header from an untrusted address ignored");
            }
        }
        Err(PageError::SignIn)
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: u64) -> String {
        format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.config.secure_cookies {
                "; Secure"
            } else {
                ""
            }
        )
    }
}

/// A page for a signed-in user, with the session cookie when one was just made.
fn page(new_session: Option<String>, app: &App, markup: Markup) -> Response {
    let mut response = markup.into_response();
    if let Some(id) = new_session {
        if let Ok(value) = app
            .set_cookie(SESSION_COOKIE, &id, SESSION_TTL.as_secs())
            .parse()
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The console's routes.
pub fn router(config: ConsoleConfig) -> Router {
    let app = Arc::new(App {
        config,
        client: Mutex::new(None),
        sessions: std::sync::Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/phones", get(phones))
        .route("/overdue", get(overdue))
        .route("/lost", get(lost))
        .route("/phone", get(phone_history))
        .route("/user", get(user_history))
        .route("/admin", get(admin_page).post(admin_request))
        .with_state(app)
}

/// Serves the console until `shutdown` resolves.
pub async fn serve(
    config: ConsoleConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {listen} (console.listen): {err}"))?;
    tracing::info!(listen = %listen, "fleet console serving");
    axum::serve(
        listener,
        router(config).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

fn header_user(session: &Session) -> (&str, Role, &str) {
    (session.user.as_str(), session.role, session.csrf.as_str())
}

async fn login_form(State(app): State<Shared>) -> Response {
    let pre = token();
    let mut response = pages::login(&pre, None).into_response();
    if let Ok(value) = app.set_cookie(PRE_COOKIE, &pre, 900).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let pre_ok = cookie(&headers, PRE_COOKIE).is_some_and(|pre| same(&pre, &form.csrf));
    if !pre_ok {
        return (
            StatusCode::FORBIDDEN,
            pages::login(
                &form.csrf,
                Some("The form expired; reload the page and sign in again."),
            ),
        )
            .into_response();
    }
    let user = app.config.users.iter().find(|u| u.name == form.username);
    let verified = user.filter(|u| {
        PasswordHash::new(u.hash.expose()).is_ok_and(|hash| {
            argon2::Argon2::default()
                .verify_password(form.password.as_bytes(), &hash)
                .is_ok()
        })
    });
    let Some(user) = verified else {
        tracing::warn!(user = %form.username, "console sign-in refused");
        return (
            StatusCode::UNAUTHORIZED,
            pages::login(&form.csrf, Some("Unknown user or wrong password.")),
        )
            .into_response();
    };
    let id = token();
    app.sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            id.clone(),
            Session {
                user: user.name.clone(),
                role: user.role,
                csrf: token(),
                expires: Instant::now() + SESSION_TTL,
            },
        );
    tracing::info!(user = %user.name, "console sign-in");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = app
        .set_cookie(SESSION_COOKIE, &id, SESSION_TTL.as_secs())
        .parse()
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(app): State<Shared>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let (_, session) = app.session(&headers, peer)?;
    if !same(&session.csrf, &form.csrf) {
        return Err(PageError::Forbidden(
            "The form's security token does not match; reload the page.",
        ));
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        app.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = app.set_cookie(SESSION_COOKIE, "", 0).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

fn fleet_error(err: tokio_postgres::Error) -> PageError {
    PageError::Fleet(err.to_string())
}

async fn overview(
    State(app): State<Shared>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, PageError> {
    let (new, session) = app.session(&headers, peer)?;
    let db = app.db().await?;
    let cabinets = data::cabinets(&db).await.map_err(fleet_error)?;
    let phones = data::phones(&db, "", app.config.loan_hours)
        .await
        .map_err(fleet_error)?;
    let out = phones.iter().filter(|p| p.state == "out").count();
    let overdue = phones.iter().filter(|p| p.overdue).count();
    let chart = pages::chart(&data::out_by_hour(&db).await.map_err(fleet_error)?);
    Ok(page(
        new,
        &app,
        pages::layout(
            "Cabinets",
            Some(header_user(&session)),
            true,
            pages::overview(&cabinets, chart, out, overdue),
        ),
    ))
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn phones(
    State(app): State<Shared>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(search): Query<Search>,
) -> Result<Response, PageError> {
    let (new, session) = app.session(&headers, peer)?;
    let db = app.db().await?;
    let list = data::phones(&db, &search.q, app.config.loan_hours)
        .await
        .map_err(fleet_error)?;
    let admin = (session.role == Role::Admin).then_some(session.csrf.as_str());
    Ok(page(
        new,
        &app,
        pages::layout(
            "Phones",
            Some(header_user(&session)),
            search.q.is_empty(),
            pages::phones(&search.q, &list, admin, None),
        ),
    ))
}

async fn overdue(
    State(app): State<Shared>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, PageError> {
    let (new, session) = app.session(&headers, peer)?;
    let db = app.db().await?;
    let list: Vec<_> = data::phones(&db, "", app.config.loan_hours)
        .await
        .map_err(fleet_error)?
        .into_iter()
        .filter(|p| p.overdue)
        .collect();
    let note = format!(
        "Loans past their due time ({} hours after check-out, or the station's shift length).",
        app.config.loan_hours
    );
    Ok(page(
        new,
        &app,
        pages::layout(
            "Overdue phones",
            Some(header_user(&session)),
            true,
            pages::phones("", &list, None, Some(&note)),
        ),
    ))
}

async fn lost(
    State(app): State<Shared>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, PageError> {
    let (new, session) = app.session(&headers, peer)?;
    let db = app.db().await?;
    let limit =
        chrono::Utc::now() - chrono::Duration::hours(i64::from(app.config.lost_after_hours));
    let mut list = data::marked_lost(&db).await.map_err(fleet_error)?;
    list.extend(
        data::phones(&db, "", app.config.loan_hours)
            .await
            .map_err(fleet_error)?
            .into_iter()
            .filter(|p| p.state == "out" && p.since.is_some_and(|s| s < limit)),
    );
    let note = format!(
        "Phones marked lost at a cabinet, then loans open for more than {} hours.",
        app.config.lost_after_hours
    );
    Ok(page(
        new,
        &app,
        pages::layout(
            "Lost phones",
            Some(header_user(&session)),
            true,
            pages::phones("", &list, None, Some(&note)),
        ),
    ))
}

#[derive(Deserialize)]
struct PhoneQuery {
    id: String,
}

async fn phone_history(
    State(app): State<Shared>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<PhoneQuery>,
) -> Result<Response, PageError> {
    let (new, session) = app.session(&headers, peer)?;
    let db = app.db().await?;
    let events = data::history(&db, Some(&query.id), None)
        .await
        .map_err(fleet_error)?;
    Ok(page(
        new,
        &app,
        pages::layout(
            &format!("History of phone {}", query.id),
            Some(header_user(&session)),
            false,
            pages::history(&events),
        ),
    ))
}

#[derive(Deserialize)]
struct UserQuery {
    name: String,
}

async fn user_history(
    State(app): State<Shared>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<UserQuery>,
) -> Result<Response, PageError> {
    let (new, session) = app.session(&headers, peer)?;
    let db = app.db().await?;
    let events = data::history(&db, None, Some(&query.name))
        .await
        .map_err(fleet_error)?;
    Ok(page(
        new,
        &app,
        pages::layout(
            &format!("History of {}", query.name),
            Some(header_user(&session)),
            false,
            pages::history(&events),
        ),
    ))
}

#[derive(Deserialize)]
struct Flash {
    #[serde(default)]
    queued: Option<i64>,
}

async fn admin_page(
    State(app): State<Shared>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(flash): Query<Flash>,
) -> Result<Response, PageError> {
    let (new, session) = app.session(&headers, peer)?;
    let db = app.db().await?;
    let rows = data::requests(&db).await.map_err(fleet_error)?;
    let flash = flash
        .queued
        .map(|id| format!("Request #{id} queued; the station carries it out within seconds."));
    Ok(page(
        new,
        &app,
        pages::layout(
            "Admin requests",
            Some(header_user(&session)),
            true,
            pages::requests(&rows, flash.as_deref()),
        ),
    ))
}

#[derive(Deserialize)]
struct AdminForm {
    csrf: String,
    station: String,
    #[serde(default)]
    slot: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    user: String,
    action: String,
}

async fn admin_request(
    State(app): State<Shared>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<AdminForm>,
) -> Result<Response, PageError> {
    let (_, session) = app.session(&headers, peer)?;
    if !same(&session.csrf, &form.csrf) {
        return Err(PageError::Forbidden(
            "The form's security token does not match; reload the page.",
        ));
    }
    if session.role != Role::Admin {
        return Err(PageError::Forbidden(
            "Only console admins may queue admin requests.",
        ));
    }
    // The station's own operator commands (`AdminCommand`): close-loan and mark-lost are
    // what `badgedock admin close-loan|mark-lost` sends; "release a slot" is the retry
    // that returns a set-aside phone to service.
    let optional = |text: &str| {
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    };
    let command = match form.action.as_str() {
        "release-slot" => serde_json::json!({ "command": "retry", "slot": form.slot }),
        "cancel-reservation" => {
            serde_json::json!({ "command": "cancel-reservation", "slot": form.slot })
        }
        "close-loan" | "mark-lost" => {
            let (user, device) = (optional(&form.user), optional(&form.device));
            if user.is_none() && device.is_none() {
                return Err(PageError::Forbidden(
                    "Name the phone or its holder: open the request from the phone list.",
                ));
            }
            serde_json::json!({ "command": form.action, "user": user, "device": device })
        }
        _ => return Err(PageError::Forbidden("Unknown admin action.")),
    };
    let db = app.db().await?;
    let id = data::queue_request(&db, &form.station, &command, &session.user)
        .await
        .map_err(fleet_error)?;
    tracing::info!(request = id, user = %session.user, station = %form.station, action = %form.action, "admin request queued");
    Ok(Redirect::to(&format!("/admin?queued={id}")).into_response())
}

/// An argon2id PHC string for a users-file line (`badgedock fleet hash-password`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}
