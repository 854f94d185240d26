//! The control socket protocol: JSON lines over a Unix socket, versioned.
//!
//! Each request is one line `{"v":1,"cmd":…}`; each answer is one line
//! `{"v":1,"type":…}`. `subscribe` keeps the connection open and sends a snapshot line
//! after every change. Commands that change state (`tap`, `admin`, `enroll`) are
//! accepted only from root or the configured admin group; the server checks the peer's
//! credentials, never anything the client says about itself.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;

use crate::checkout::{AdminCommand, Snapshot, TapDecision};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    /// Protocol version.
    pub v: u32,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "cmd")]
pub enum Request {
    /// One snapshot.
    Status,
    /// A snapshot now and after every change.
    Subscribe,
    /// Inject a tap (admin only). `badge` is written as the reader renders it.
    Tap {
        /// The reader to attribute it to (`control` when absent).
        reader: Option<String>,
        /// The badge number.
        badge: String,
    },
    /// An operator command (admin only).
    Admin {
        /// The command.
        admin: AdminCommand,
    },
    /// Complete a supervised enrolment with this username (admin only).
    Enroll {
        /// The Workspace ONE username.
        username: String,
    },
}

/// An answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseLine {
    /// Protocol version.
    pub v: u32,
    /// The answer.
    #[serde(flatten)]
    pub response: Response,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Response {
    /// The station's state.
    Snapshot {
        /// The snapshot.
        snapshot: Box<Snapshot>,
    },
    /// The decision on an injected tap; sent once the tap is durably recorded.
    Decision {
        /// The decision.
        decision: TapDecision,
    },
    /// A command was carried out.
    Done {
        /// What happened.
        message: String,
    },
    /// The request was refused or failed.
    Error {
        /// Why, in words that say what to do.
        message: String,
    },
}

/// A control-socket failure on the client side.
#[derive(Debug, Error)]
pub enum ControlError {
    /// The daemon is not running or the socket is not reachable. The message says what
    /// is wrong once and what to do; the OS error is not repeated as a cause.
    #[error("cannot reach the badgedock daemon at {path}: {}", connect_advice(*.kind))]
    Connect {
        /// The socket path.
        path: String,
        /// What the OS said.
        kind: std::io::ErrorKind,
    },
    /// The connection broke.
    #[error("control socket connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon closed the connection without an answer.
    #[error("the daemon closed the connection without answering")]
    Closed,
    /// The daemon sent a line this client cannot read.
    #[error("unreadable answer from the daemon (protocol version mismatch?): {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
}

/// Sends one request and reads one answer.
pub async fn request(
    path: &Path,
    request: Request,
    timeout: Duration,
) -> Result<Response, ControlError> {
    let exchange = async {
        let stream = connect(path).await?;
        let (read, mut write) = stream.into_split();
        send(&mut write, request).await?;
        let mut lines = BufReader::new(read).lines();
        read_response(&mut lines).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ControlError::Timeout(timeout))?
}

/// An open `subscribe` stream.
#[derive(Debug)]
pub struct Subscription {
    lines: Lines<BufReader<OwnedReadHalf>>,
    _write: tokio::net::unix::OwnedWriteHalf,
}

impl Subscription {
    /// Connects and subscribes.
    pub async fn open(path: &Path) -> Result<Subscription, ControlError> {
        let stream = connect(path).await?;
        let (read, mut write) = stream.into_split();
        send(&mut write, Request::Subscribe).await?;
        Ok(Subscription {
            lines: BufReader::new(read).lines(),
            _write: write,
        })
    }

    /// The next snapshot; `Err(Closed)` when the daemon went away.
    pub async fn next(&mut self) -> Result<Snapshot, ControlError> {
        match read_response(&mut self.lines).await? {
            Response::Snapshot { snapshot } => Ok(*snapshot),
            Response::Error { message } => Err(ControlError::Protocol(message)),
            Response::Decision { .. } | Response::Done { .. } => Err(ControlError::Protocol(
                "the daemon answered a subscription with something else than a snapshot".into(),
            )),
        }
    }
}

async fn connect(path: &Path) -> Result<UnixStream, ControlError> {
    UnixStream::connect(path)
        .await
        .map_err(|source| ControlError::Connect {
            path: path.display().to_string(),
            kind: source.kind(),
        })
}

/// What a failed connect means and what to do, in one sentence.
fn connect_advice(kind: std::io::ErrorKind) -> String {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
            "the daemon is not running (is badgedock.service running? systemctl status badgedock)"
                .into()
        }
        ErrorKind::PermissionDenied => {
            "permission denied: run as root or as a member of group badgedock (or station.admin-group)"
                .into()
        }
        other => format!(
            "{other} (is badgedock.service running? systemctl status badgedock)"
        ),
    }
}

async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    request: Request,
) -> Result<(), ControlError> {
    let line = RequestLine {
        v: PROTOCOL_VERSION,
        request,
    };
    let mut text =
        serde_json::to_string(&line).map_err(|err| ControlError::Protocol(err.to_string()))?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    Ok(())
}

async fn read_response(
    lines: &mut Lines<BufReader<OwnedReadHalf>>,
) -> Result<Response, ControlError> {
    let Some(line) = lines.next_line().await? else {
        return Err(ControlError::Closed);
    };
    let parsed: ResponseLine =
        serde_json::from_str(&line).map_err(|err| ControlError::Protocol(err.to_string()))?;
    if parsed.v != PROTOCOL_VERSION {
        return Err(ControlError::Protocol(format!(
            "daemon speaks protocol version {}, this client {PROTOCOL_VERSION}: install matching versions",
            parsed.v
        )));
    }
    Ok(parsed.response)
}

/// Parses one request line (server side).
pub fn parse_request(line: &str) -> Result<Request, String> {
    let parsed: RequestLine =
        serde_json::from_str(line).map_err(|err| format!("unreadable request: {err}"))?;
    if parsed.v != PROTOCOL_VERSION {
        return Err(format!(
            "client speaks protocol version {}, daemon {PROTOCOL_VERSION}: install matching versions",
            parsed.v
        ));
    }
    Ok(parsed.request)
}

/// Encodes one answer line, newline included (server side).
pub fn encode_response(response: Response) -> String {
    let line = ResponseLine {
        v: PROTOCOL_VERSION,
        response,
    };
    let mut text = serde_json::to_string(&line).unwrap_or_else(|err| {
        format!("{{\"v\":{PROTOCOL_VERSION},\"type\":\"error\",\"message\":\"cannot encode answer: {err}\"}}")
    });
    text.push('\n');
    text
}
