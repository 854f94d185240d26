//! Logging setup: journald when systemd started us, plain stderr otherwise (no ANSI
//! colours unless stderr is a terminal), never stdout, which belongs to the dashboard and
//! to command output. Set up before the config is parsed so config errors are logged.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// journald when `JOURNAL_STREAM` says stderr is the journal, stderr otherwise.
    Auto,
    /// Nowhere visible (the interactive demo owns the terminal); warnings still go to
    /// journald if it is there.
    Quiet,
}

/// True when `JOURNAL_STREAM` names stderr itself (its `device:inode` match stderr's),
/// as systemd sets it for a service whose stderr goes to the journal. A variable
/// inherited by a child with another stderr (a shell started from the service, a pipe)
/// does not count.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.trim().parse::<u64>(), ino.trim().parse::<u64>()) else {
        return false;
    };
    use std::os::fd::AsRawFd as _;
    match nix::sys::stat::fstat(std::io::stderr().as_raw_fd()) {
        Ok(stat) => stat.st_dev == dev && stat.st_ino == ino,
        Err(_) => false,
    }
}

/// Installs the global subscriber. `default_level` applies when `RUST_LOG` is unset.
pub fn init(target: LogTarget, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            // Plain field names (MESSAGE_ID, SLOT…) and INFO as info, not notice.
            let journald = journald.with_field_prefix(None).with_priority_mappings(
                tracing_journald::PriorityMappings {
                    info: tracing_journald::Priority::Informational,
                    debug: tracing_journald::Priority::Debug,
                    ..tracing_journald::PriorityMappings::new()
                },
            );
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journald)
                .try_init();
            return;
        }
    }
    if target == LogTarget::Quiet {
        let _ = tracing_subscriber::registry()
            .with(EnvFilter::new("off"))
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
