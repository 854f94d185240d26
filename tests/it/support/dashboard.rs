//! A stand-in daemon for the dashboard tests: a real Unix control socket that answers
//! `subscribe` with snapshot lines, speaking the protocol through `badgedock::control`.

use std::path::{Path, PathBuf};

use badgedock::checkout::{Instruction, MdmView, Snapshot, Tone};
use badgedock::control::{encode_response, parse_request, Request, Response};
use badgedock::domain::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A minimal snapshot for a station called `station`.
pub fn snapshot(station: &str) -> Snapshot {
    Snapshot {
        station: station.to_string(),
        at: Timestamp(1_741_961_007_000),
        instruction: Instruction {
            tone: Tone::Idle,
            headline: "Tap your badge".to_string(),
            detail: String::new(),
            at: Timestamp(1_741_961_007_000),
        },
        slots: vec![],
        loans: vec![],
        readers: vec![],
        mdm: MdmView {
            reachable: None,
            waiting: 0,
            last_error: None,
        },
        events: vec![],
        open_reservations: 0,
        instructions: Vec::new(),
        fleet: None,
    }
}

/// A fake daemon listening on a control socket. Dropping it (or [`FakeDaemon::stop`])
/// closes every connection and removes the socket file, as a stopped daemon would.
pub struct FakeDaemon {
    path: PathBuf,
    publisher: watch::Sender<Snapshot>,
    accept_task: JoinHandle<()>,
}

impl FakeDaemon {
    /// Listens on `path` and serves `first` to every subscriber, then every published
    /// snapshot.
    pub fn start(path: &Path, first: Snapshot) -> FakeDaemon {
        let listener = UnixListener::bind(path).unwrap();
        let (publisher, snapshots) = watch::channel(first);
        let accept_task = tokio::spawn(async move {
            // Connection tasks live in this set so aborting the accept task ends them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut snapshots = snapshots.clone();
                connections.spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let Ok(Some(line)) = lines.next_line().await else {
                        return;
                    };
                    if parse_request(&line) != Ok(Request::Subscribe) {
                        let refusal = encode_response(Response::Error {
                            message: format!("fake daemon only serves subscribe, got {line}"),
                        });
                        let _ = write.write_all(refusal.as_bytes()).await;
                        return;
                    }
                    loop {
                        let snapshot = snapshots.borrow_and_update().clone();
                        let answer = encode_response(Response::Snapshot {
                            snapshot: Box::new(snapshot),
                        });
                        if write.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        if snapshots.changed().await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeDaemon {
            path: path.to_path_buf(),
            publisher,
            accept_task,
        }
    }

    /// Sends `snapshot` to every subscriber.
    pub fn publish(&self, snapshot: Snapshot) {
        self.publisher.send_replace(snapshot);
    }

    /// Stops listening, drops every connection and removes the socket file.
    pub async fn stop(mut self) {
        self.accept_task.abort();
        // The abort is complete once the task is joined; Drop then removes the file.
        let _ = (&mut self.accept_task).await;
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.accept_task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}
