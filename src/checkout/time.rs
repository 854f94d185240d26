//! The engine's two clocks: wall time for what is shown and stored, a monotonic clock for
//! every duration (reservation expiry, reboot window, retries), so that a wall clock that
//! steps back or forward neither stalls nor hurries anything.

use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;

/// Milliseconds on a monotonic clock (the daemon's: since it started; the simulator's:
/// virtual). Only differences mean anything.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Mono(pub i64);

impl Mono {
    /// This instant moved `millis` later (saturating).
    pub fn plus_millis(self, millis: i64) -> Mono {
        Mono(self.0.saturating_add(millis))
    }

    /// Milliseconds from `earlier` to `self`, zero when `earlier` is later.
    pub fn millis_since(self, earlier: Mono) -> i64 {
        self.0.saturating_sub(earlier.0).max(0)
    }
}

/// The time an input is handled at: both clocks, read together by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall time: stored in records and shown.
    pub wall: Timestamp,
    /// Monotonic time: measures durations.
    pub mono: Mono,
}

impl From<Timestamp> for Now {
    /// Both clocks from one wall time: for scripts and tests whose clock never steps.
    fn from(wall: Timestamp) -> Now {
        Now {
            wall,
            mono: Mono(wall.0),
        }
    }
}
