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

/// Installs the global subscriber. `default_level` applies when `RUST_LOG` is unset.
pub fn init(target: LogTarget, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    if under_journal {
        if let Ok(journald) = tracing_journald::layer() {
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
