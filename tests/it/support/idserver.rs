//! A small identity web service for the HTTP directory tests, on 127.0.0.1:0.
//!
//! It answers `GET /badge/{badge}` in the convention of `peers.md` (`{"user": "…"}`, 404
//! for unknown), plus badges that misbehave on purpose (slow, malformed, 500), counts the
//! requests it receives, and can be switched to answering 503 for an outage.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// Badges the service answers, and how.
pub const ALICE: &str = "DEADBEEF";
pub const SAM_ENROLLER: &str = "5EC0FFEE";
pub const WITH_SLASH: &str = "AB/CD 12";
pub const NULL_USER: &str = "00000000";
pub const SLOW: &str = "510E510E";
pub const MALFORMED: &str = "BAADF00D";
pub const NOT_AN_OBJECT: &str = "BAADF00E";
pub const SERVER_ERROR: &str = "5000000E";

#[derive(Default)]
struct Counters {
    requests: AtomicUsize,
    down: AtomicBool,
}

/// The running service; stopped when dropped.
pub struct IdServer {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl IdServer {
    pub async fn start() -> IdServer {
        let counters = Arc::new(Counters::default());
        let app = Router::new()
            .route("/badge/{badge}", get(answer))
            .with_state(Arc::clone(&counters));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        IdServer {
            addr,
            counters,
            task,
        }
    }

    /// The directory URL template.
    pub fn url(&self) -> String {
        format!("http://{}/badge/{{badge}}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// While down, every request gets 503.
    pub fn set_down(&self, down: bool) {
        self.counters.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for IdServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(counters): State<Arc<Counters>>, Path(badge): Path<String>) -> Response {
    counters.requests.fetch_add(1, Ordering::SeqCst);
    if counters.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response();
    }
    match badge.as_str() {
        ALICE => {
            Json(json!({"user": "alice", "displayName": "Alice Martin", "groups": ["nursing"]}))
                .into_response()
        }
        SAM_ENROLLER => {
            Json(json!({"user": "sam", "display_name": "Sam Supervisor", "roles": ["enroller"]}))
                .into_response()
        }
        WITH_SLASH => Json(json!({"user": "slash"})).into_response(),
        NULL_USER => Json(json!({"user": null})).into_response(),
        SLOW => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Json(json!({"user": "late"})).into_response()
        }
        MALFORMED => (StatusCode::OK, "<html>oops</html>").into_response(),
        NOT_AN_OBJECT => Json(json!({"user": 42, "echo": NOT_AN_OBJECT})).into_response(),
        SERVER_ERROR => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        _ => (StatusCode::NOT_FOUND, "no such badge").into_response(),
    }
}
