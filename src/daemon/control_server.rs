//! The control socket server: a Unix socket, mode 0660, group = the admin group, JSON
//! lines as in `crate::control`. Reading commands (`status`, `subscribe`) are open to
//! whoever can reach the socket; commands that change state (`tap`, `admin`, `enroll`)
//! are accepted only from root, the daemon's own user, or members of the admin group,
//! judged by the kernel's peer credentials.

//!
//! Limits: a connection waiting for its next request line is idle; at most
//! [`MAX_IDLE`] idle connections are kept, and a new connection evicts the oldest idle
//! one (told so in one line), so a flood of idle connections never locks out a tap or
//! the dashboard, which send their line at once. At most [`MAX_BUSY`] requests are
//! answered at once and [`MAX_SUBSCRIBERS`] screens subscribed; a request line longer
//! than [`MAX_REQUEST_BYTES`] is refused with an error line and the connection closed.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use nix::unistd::{Gid, Group, Uid, User};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checkout::{Input, Snapshot};
use crate::control::{encode_response, parse_request, Request, Response};
use crate::daemon::engine_loop::EngineMsg;
use crate::daemon::taps::TapResolver;

/// Idle connections kept at most (waiting for a request line); a new one evicts the
/// oldest.
pub const MAX_IDLE: usize = 64;
/// Requests answered at once; more are refused with "busy".
pub const MAX_BUSY: usize = 64;
/// Subscribed screens at once.
pub const MAX_SUBSCRIBERS: usize = 16;
/// The longest request line accepted, newline excluded.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// An idle connection is closed after this long without a request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The server.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    admin_gid: Option<Gid>,
    snapshots: watch::Receiver<Snapshot>,
    engine: mpsc::Sender<EngineMsg>,
    resolver: Arc<TapResolver>,
    enrollment: EnrollmentDesk,
    idle: Mutex<VecDeque<(u64, CancellationToken)>>,
    next_id: AtomicU64,
    busy: Semaphore,
    subscribers: Semaphore,
}

/// What completing a supervised enrolment needs: the directory, Workspace ONE and the
/// station's local badge table.
#[derive(Clone)]
pub struct EnrollmentDesk {
    /// Where the username must exist.
    pub directory: Arc<crate::directory::Directory>,
    /// Where it must exist exactly once.
    pub mdm: Arc<crate::mdm::UemClient>,
    /// Where the new badge goes.
    pub store: crate::store::Store,
}

impl ControlServer {
    /// Binds the socket (replacing a stale one), sets its mode and group.
    pub fn bind(
        path: &Path,
        admin_group: Option<&str>,
        snapshots: watch::Receiver<Snapshot>,
        engine: mpsc::Sender<EngineMsg>,
        resolver: Arc<TapResolver>,
        enrollment: EnrollmentDesk,
    ) -> anyhow::Result<ControlServer> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| {
                format!(
                    "cannot create the control socket's directory {}",
                    parent.display()
                )
            })?;
        }
        if path.exists() {
            // A socket left by a daemon that was killed: nobody answers on it any more.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!(
                    "another badgedock daemon is already listening on {}: stop it first (systemctl stop badgedock)",
                    path.display()
                );
            }
            std::fs::remove_file(path).with_context(|| {
                format!("cannot remove the stale control socket {}", path.display())
            })?;
        }
        let admin_gid = match admin_group {
            Some(name) => Some(
                Group::from_name(name)
                    .ok()
                    .flatten()
                    .map(|group| group.gid)
                    .with_context(|| format!("station.admin-group: group {name:?} does not exist on this system: create it or fix the name"))?,
            ),
            None => None,
        };
        let listener = UnixListener::bind(path)
            .with_context(|| format!("cannot listen on the control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        if let Some(gid) = admin_gid {
            if let Err(err) = nix::unistd::chown(path, None, Some(gid)) {
                tracing::warn!(cause = %err, "cannot give the control socket to the admin group; only root can use it");
            }
        }
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            admin_gid,
            snapshots,
            engine,
            resolver,
            enrollment,
            idle: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
            busy: Semaphore::new(MAX_BUSY),
            subscribers: Semaphore::new(MAX_SUBSCRIBERS),
        })
    }

    /// Registers a connection as idle, evicting the oldest idle one when full.
    fn enter_idle(&self, id: u64, token: CancellationToken) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.push_back((id, token));
        while idle.len() > MAX_IDLE {
            if let Some((_, oldest)) = idle.pop_front() {
                oldest.cancel();
            }
        }
    }

    fn leave_idle(&self, id: u64) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.retain(|(other, _)| *other != id);
    }

    /// Serves until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        let tracker = TaskTracker::new();
        let shared = Arc::new(self);
        loop {
            let accepted = tokio::select! {
                () = cancel.cancelled() => break,
                accepted = shared.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let server = Arc::clone(&shared);
                    let cancel = cancel.clone();
                    tracker.spawn(async move {
                        if let Err(err) = server.serve(stream, cancel).await {
                            tracing::debug!(cause = %err, "control connection ended");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(cause = %err, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
        let _ = std::fs::remove_file(&shared.path);
    }

    async fn serve(&self, stream: UnixStream, cancel: CancellationToken) -> anyhow::Result<()> {
        let admin = self.is_admin(&stream);
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        loop {
            let evicted = CancellationToken::new();
            self.enter_idle(id, evicted.clone());
            let next = tokio::select! {
                () = cancel.cancelled() => None,
                () = evicted.cancelled() => Some(Err("too many idle connections to the control socket: this one was closed; connect again and send the request at once")),
                () = tokio::time::sleep(IDLE_TIMEOUT) => Some(Err("no request for 60 s: connection closed")),
                line = read_request_line(&mut lines) => match line {
                    Ok(None) => None,
                    Ok(Some(line)) => Some(Ok(line)),
                    Err(LineError::TooLong) => Some(Err("request line longer than 16384 bytes: refused")),
                    Err(LineError::NotText) => Some(Err("request line is not UTF-8 text: refused")),
                    Err(LineError::Io(err)) => return Err(err.into()),
                },
            };
            self.leave_idle(id);
            let line = match next {
                None => return Ok(()),
                Some(Ok(line)) => line,
                Some(Err(message)) => {
                    let refusal = Response::Error {
                        message: message.to_string(),
                    };
                    // Best effort: the peer may not be reading.
                    let _ = tokio::time::timeout(
                        Duration::from_millis(100),
                        write.write_all(encode_response(refusal).as_bytes()),
                    )
                    .await;
                    return Ok(());
                }
            };
            let Ok(_permit) = self.busy.try_acquire() else {
                let busy = Response::Error {
                    message: format!("the station is answering {MAX_BUSY} requests already: try again in a moment"),
                };
                write.write_all(encode_response(busy).as_bytes()).await?;
                continue;
            };
            let response = match parse_request(&line) {
                Err(message) => Response::Error { message },
                Ok(Request::Tap { .. } | Request::Admin { .. } | Request::Enroll { .. }) if !admin => Response::Error {
                    message: "permission denied: this command needs root or membership of the station's admin group (station.admin-group)".into(),
                },
                Ok(Request::Subscribe) => {
                    drop(_permit);
                    let Ok(_screen) = self.subscribers.try_acquire() else {
                        let full = Response::Error {
                            message: format!("{MAX_SUBSCRIBERS} screens are subscribed already: close one"),
                        };
                        write.write_all(encode_response(full).as_bytes()).await?;
                        return Ok(());
                    };
                    return self.stream_snapshots(&mut write, &cancel).await;
                }
                Ok(Request::Status) => snapshot_response(&self.snapshots.borrow()),
                Ok(Request::Tap { reader, badge }) => {
                    let input = self.resolver.resolve_text(reader.as_deref(), &badge).await;
                    self.ask(input).await
                }
                Ok(Request::Admin { admin }) => {
                    let description = admin.describe();
                    match self.engine.send(EngineMsg::Input(Input::Admin(admin))).await {
                        Ok(()) => Response::Done { message: format!("sent {description}") },
                        Err(_) => Response::Error { message: "the engine is stopping".into() },
                    }
                }
                Ok(Request::Enroll { username }) => self.enroll(&username).await,
            };
            write
                .write_all(encode_response(response).as_bytes())
                .await?;
        }
    }

    /// `subscribe`: a snapshot now and after every change, until either side stops.
    async fn stream_snapshots(
        &self,
        write: &mut OwnedWriteHalf,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut snapshots = self.snapshots.clone();
        loop {
            let response = snapshot_response(&snapshots.borrow_and_update());
            write
                .write_all(encode_response(response).as_bytes())
                .await?;
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                changed = snapshots.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }

    /// Completes a supervised enrolment: the badge tapped unknown, approved by an enroller's
    /// badge, gets `username` once the directory and Workspace ONE agree it is one person.
    async fn enroll(&self, username: &str) -> Response {
        use crate::directory::{validate_enrollment, WorkspaceOneMatch};
        use crate::mdm::{Mdm, MdmError};
        let (reply, answer) = oneshot::channel();
        if self
            .engine
            .send(EngineMsg::ApprovedEnrollment { reply })
            .await
            .is_err()
        {
            return Response::Error {
                message: "the engine is stopping".into(),
            };
        }
        let Ok(Some((badge, approver))) = answer.await else {
            return Response::Error {
                message: "no enrolment is approved: tap the new badge, then a supervisor's badge (enroller role), then enter the username within two minutes".into(),
            };
        };
        let desk = &self.enrollment;
        let username = crate::domain::Username::new(username.trim());
        let mdm = Arc::clone(&desk.mdm);
        let checked = validate_enrollment(
            &desk.directory,
            Some(&approver),
            &username,
            |name| async move {
                match mdm.lookup_user(&name).await {
                    Ok(user_id) => Ok(WorkspaceOneMatch::One { user_id }),
                    Err(MdmError::NoSuchUser { .. }) => Ok(WorkspaceOneMatch::None),
                    Err(MdmError::AmbiguousUser { matches, .. }) => {
                        Ok(WorkspaceOneMatch::Several { count: matches })
                    }
                    Err(other) => Err(other.to_string()),
                }
            },
        )
        .await;
        let enrollment = match checked {
            Ok(enrollment) => enrollment,
            Err(err) => {
                tracing::warn!(badge = %badge, cause = %err, "enrolment refused");
                return Response::Error {
                    message: format!("enrolment refused: {err}"),
                };
            }
        };
        let local = crate::store::LocalBadge {
            number: badge.clone(),
            user: enrollment.user.clone(),
            source: crate::store::BadgeSource::Enrolled,
            approved_by: Some(enrollment.approved_by.clone()),
            added_at: crate::daemon::now(),
        };
        if let Err(err) = desk.store.upsert_badges(vec![local]).await {
            return Response::Error {
                message: format!("cannot record the badge: {err}"),
            };
        }
        let message = format!(
            "badge {badge} enrolled for {} ({})",
            enrollment.user.display_name, enrollment.user.username
        );
        let input = Input::Enrolled {
            badge,
            user: enrollment.user,
            approved_by: enrollment.approved_by,
        };
        if self.engine.send(EngineMsg::Input(input)).await.is_err() {
            return Response::Error {
                message: "the engine is stopping".into(),
            };
        }
        Response::Done { message }
    }

    async fn ask(&self, input: Input) -> Response {
        match crate::daemon::engine_loop::decide(&self.engine, input).await {
            Ok(decision) => Response::Decision { decision },
            Err(message) => Response::Error { message },
        }
    }

    fn is_admin(&self, stream: &UnixStream) -> bool {
        let Ok(credentials) = stream.peer_cred() else {
            return false;
        };
        let uid = Uid::from_raw(credentials.uid());
        if uid.is_root() || uid == Uid::effective() {
            return true;
        }
        let Some(admin_gid) = self.admin_gid else {
            return false;
        };
        if Gid::from_raw(credentials.gid()) == admin_gid {
            return true;
        }
        // Supplementary groups of the peer's user.
        match User::from_uid(uid) {
            Ok(Some(user)) => std::ffi::CString::new(user.name)
                .ok()
                .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
                .is_some_and(|groups| groups.contains(&admin_gid)),
            _ => false,
        }
    }
}

/// Why a request line could not be read.
enum LineError {
    TooLong,
    NotText,
    Io(std::io::Error),
}

/// One request line, newline stripped, reading at most [`MAX_REQUEST_BYTES`] + 1 bytes;
/// `None` at end of stream.
async fn read_request_line(
    reader: &mut BufReader<OwnedReadHalf>,
) -> Result<Option<String>, LineError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_REQUEST_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let n = (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut bytes)
        .await
        .map_err(LineError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    } else if bytes.len() > MAX_REQUEST_BYTES {
        return Err(LineError::TooLong);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| LineError::NotText)
}

fn snapshot_response(snapshot: &Snapshot) -> Response {
    Response::Snapshot {
        snapshot: Box::new(snapshot.clone()),
    }
}
