//! Storage faults: what the engine loop keeps while the disk under the store refuses
//! writes (full, read-only, failing), and the words it uses to say so.
//!
//! A state change is durable before it is shown or answered; when the store cannot make
//! it durable because of the disk, the daemon does not stop (a restart would meet the
//! same disk) and does not apply the change either. It refuses taps with
//! [`REFUSAL`], shows [`HEADLINE`] on the main line, keeps the other inputs (dock
//! events, Workspace ONE answers, operator commands) in order to apply them once the
//! disk takes writes again, and probes the store every [`PROBE_INTERVAL`] on the
//! monotonic clock. A damaged store file is not one of these faults: it stops the daemon
//! with [`crate::store::StoreError::Corrupt`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checkout::{Input, Instruction, Snapshot, Tone};
use crate::store::StorageFault;

/// How often the store is probed while it refuses writes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// How many inputs are kept for later while the store refuses writes; beyond that the
/// newest are dropped (said in the journal; the dock is scanned again on recovery).
pub const MAX_DEFERRED: usize = 10_000;

/// The main line while taps cannot be recorded.
pub const HEADLINE: &str = "STATION CANNOT RECORD TAPS — CALL IT";

/// What a refused tap is told.
pub const REFUSAL: &str = "station cannot record taps — call IT";

/// One episode of the store refusing writes.
#[derive(Debug)]
pub struct Outage {
    /// What kind of fault, after looking at the folder.
    pub kind: StorageFault,
    /// The operator's sentence: what is wrong with which path, and what to check.
    pub problem: String,
    /// When it began (monotonic).
    pub started: tokio::time::Instant,
    /// When the store is probed next (monotonic).
    pub next_probe: tokio::time::Instant,
    /// Inputs to apply once the store takes writes again, oldest first.
    pub deferred: VecDeque<Input>,
    /// Inputs dropped because `deferred` was full.
    pub dropped: u64,
    /// Taps refused during the episode.
    pub refused: u64,
}

impl Outage {
    /// A new episode.
    pub fn new(kind: StorageFault, problem: String) -> Outage {
        let now = tokio::time::Instant::now();
        Outage {
            kind,
            problem,
            started: now,
            next_probe: now + PROBE_INTERVAL,
            deferred: VecDeque::new(),
            dropped: 0,
            refused: 0,
        }
    }

    /// Keeps an input for later; `false` when the queue is full and it was dropped.
    pub fn defer(&mut self, input: Input) -> bool {
        if self.deferred.len() >= MAX_DEFERRED {
            self.dropped += 1;
            return false;
        }
        self.deferred.push_back(input);
        true
    }

    /// The snapshot as the screen and `status` must show it: the fault on the main line
    /// and first among the open instructions.
    pub fn overlay(&self, snapshot: &mut Snapshot) {
        let instruction = Instruction {
            tone: Tone::Error,
            headline: HEADLINE.to_string(),
            detail: format!(
                "{}; taps are refused until it is fixed (nothing recorded is lost)",
                self.problem
            ),
            at: snapshot.at,
        };
        snapshot.instruction = instruction.clone();
        snapshot.instructions.insert(0, instruction);
    }
}

/// The operator's sentence for a fault, from a look at the state folder: a read-only
/// mount, no free space, or a file or folder this user cannot write is named as such
/// (SQLite reports a write refused by the file system as an I/O error); otherwise the
/// fault as SQLite classed it. Returns the refined kind with it.
pub fn diagnose(kind: StorageFault, store_file: &Path) -> (StorageFault, String) {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let dir = store_file
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let shown = dir.display();
    if let Ok(stat) = statvfs(dir) {
        if stat.flags().contains(FsFlags::ST_RDONLY) {
            return (
                StorageFault::ReadOnly,
                format!(
                    "the state folder {shown} is on a read-only file system: check `dmesg` for disk errors, \
                     then remount it read-write (mount -o remount,rw) or repair it"
                ),
            );
        }
        let free = stat.blocks_available().saturating_mul(stat.fragment_size());
        if kind == StorageFault::Full || free < 64 * 1024 {
            return (
                StorageFault::Full,
                format!(
                    "the disk holding the state folder {shown} is full ({} free): free some space \
                     (journalctl --vacuum-size=, old logs, apt-get clean)",
                    bytes(free)
                ),
            );
        }
    }
    let mut files: Vec<PathBuf> = vec![dir.to_path_buf(), store_file.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = store_file.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    for file in files.iter().filter(|file| file.exists()) {
        if let Err(errno) = nix::unistd::access(file.as_path(), nix::unistd::AccessFlags::W_OK) {
            return (
                StorageFault::ReadOnly,
                format!(
                    "{} cannot be written by this user ({}): check its owner and mode (the badgedock user \
                     writes the state folder) and the immutable attribute (lsattr, chattr -i)",
                    file.display(),
                    errno.desc()
                ),
            );
        }
    }
    let problem = match kind {
        StorageFault::Full => format!("the disk holding the state folder {shown} is full"),
        StorageFault::ReadOnly => format!(
            "the store in {shown} cannot be written: check the folder's owner, mode and mount"
        ),
        StorageFault::Io => format!(
            "the disk under the state folder {shown} failed a write (I/O error): check `dmesg` and the disk"
        ),
    };
    (kind, problem)
}

fn bytes(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} bytes"),
        n if n < 1024 * 1024 => format!("{} KiB", n / 1024),
        n => format!("{} MiB", n / (1024 * 1024)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_this_user_cannot_write_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("badgedock.sqlite3");
        std::fs::write(&store, b"").expect("file");
        // A writable folder with room: SQLite's own class stands.
        let (kind, problem) = diagnose(StorageFault::Io, &store);
        assert_eq!(kind, StorageFault::Io);
        assert!(problem.contains("I/O error"), "{problem}");
        assert_eq!(bytes(3 * 1024 * 1024 + 5), "3 MiB");
    }
}
