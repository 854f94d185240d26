//! Badge readers: hardware edges that turn taps into [`ReaderEvent`]s.
//!
//! Each backend runs on its own OS thread and sends events with `blocking_send` on a
//! bounded channel; the daemon formats the badge, resolves it and feeds the engine.

pub mod hid;
pub mod pcsc;

use crate::badges::RawBadge;
use crate::domain::ReaderName;

/// What a reader backend reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// A card was presented (once per presentation, after debounce).
    Tap {
        /// The configured reader name.
        reader: ReaderName,
        /// What was read, in the order the reader returned it.
        raw: RawBadge,
    },
    /// A card was presented but no usable id came back (bad status word, parity error,
    /// half a wedge read); the reason is for the screen and the log.
    BadRead {
        /// The configured reader name.
        reader: ReaderName,
        /// Why.
        reason: String,
    },
    /// The reader is present and working.
    Online {
        /// The configured reader name.
        reader: ReaderName,
    },
    /// The reader is gone or its service is down.
    Offline {
        /// The configured reader name.
        reader: ReaderName,
        /// Why, for the screen.
        detail: String,
    },
}
