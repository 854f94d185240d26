//! Telling systemd the truth: READY once everything is up, WATCHDOG from the engine loop,
//! STATUS with a one-line health summary, STOPPING on the way out. Every call is a no-op
//! when `NOTIFY_SOCKET` is unset (a terminal, a test, the demo).

use std::time::Duration;

use sd_notify::NotifyState;

/// The notifier; cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// Detects whether systemd is listening.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    /// A notifier that never sends (tests, demo).
    pub fn disabled() -> Notifier {
        Notifier { enabled: false }
    }

    /// How often the engine loop should ping: half the configured watchdog interval.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let mut usec = 0;
        if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
            Some(Duration::from_micros(usec / 2))
        } else {
            None
        }
    }

    /// READY=1 plus a status line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// STATUS=…
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// WATCHDOG=1
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// STOPPING=1
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.enabled {
            if let Err(err) = sd_notify::notify(false, states) {
                tracing::warn!(cause = %err, "cannot notify systemd");
            }
        }
    }
}
