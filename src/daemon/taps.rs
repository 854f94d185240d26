//! From a reader's raw read to an engine input: the reader's format rule makes the badge
//! number, the station's local badge table and then the directory resolve it, and the
//! policy has the last word. Runs off the engine loop, so a slow directory never holds
//! up a dock event or another nurse's tap.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::badges::{Policy, RawBadge, Resolution};
use crate::checkout::Input;
use crate::config::ReaderConfig;
use crate::daemon::engine_loop::EngineMsg;
use crate::directory::Directory;
use crate::domain::{BadgeNumber, ReaderName};
use crate::readers::ReaderEvent;
use crate::store::Store;

/// The reader name used for taps injected through the control socket.
pub const CONTROL_READER: &str = "control";

/// Turns reads into inputs.
pub struct TapResolver {
    readers: BTreeMap<ReaderName, ReaderConfig>,
    /// The directory and policy in force; `SIGHUP` replaces them ([`TapResolver::replace`]).
    current: std::sync::RwLock<(Arc<Directory>, Policy)>,
    store: Store,
}

impl TapResolver {
    /// Builds the resolver.
    pub fn new(
        readers: &[ReaderConfig],
        directory: Arc<Directory>,
        store: Store,
        policy: Policy,
    ) -> TapResolver {
        TapResolver {
            readers: readers
                .iter()
                .map(|r| (r.name.clone(), r.clone()))
                .collect(),
            current: std::sync::RwLock::new((directory, policy)),
            store,
        }
    }

    /// Puts a re-read directory and policy in force for the taps that follow (reload).
    pub fn replace(&self, directory: Arc<Directory>, policy: Policy) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (directory, policy);
    }

    fn current(&self) -> (Arc<Directory>, Policy) {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A read from a configured reader.
    pub async fn resolve_raw(&self, reader: ReaderName, raw: &RawBadge) -> Input {
        if raw.is_random_uid() {
            return Input::BadRead {
                reader,
                reason:
                    "this card or phone sends a random number on every tap: use your staff badge"
                        .into(),
            };
        }
        let Some(config) = self.readers.get(&reader) else {
            return Input::BadRead {
                reader,
                reason: "read from a reader that is not in the config".into(),
            };
        };
        match config.format.apply(raw) {
            Ok(badge) => self.resolve_number(reader, badge).await,
            Err(err) => Input::BadRead {
                reader,
                reason: format!(
                    "badge not readable with format {:?}: {err}",
                    config.format.as_str()
                ),
            },
        }
    }

    /// A tap injected as text, written as the reader renders it. With a configured reader
    /// the text is read as that reader's raw output (hex UID or typed text) and its format
    /// rule applies; without one the text is taken as the badge number itself.
    pub async fn resolve_text(&self, reader: Option<&str>, text: &str) -> Input {
        let text = text.trim();
        match reader
            .map(ReaderName::new)
            .filter(|name| self.readers.contains_key(name))
        {
            Some(name) => {
                let raw = match parse_hex(text) {
                    Some(bytes) => RawBadge::Uid(bytes),
                    None => RawBadge::Text(text.to_string()),
                };
                self.resolve_raw(name, &raw).await
            }
            None => {
                let name = ReaderName::new(reader.unwrap_or(CONTROL_READER));
                if text.is_empty() {
                    return Input::BadRead {
                        reader: name,
                        reason: "empty badge number".into(),
                    };
                }
                self.resolve_number(name, BadgeNumber::new(text.to_ascii_uppercase()))
                    .await
            }
        }
    }

    async fn resolve_number(&self, reader: ReaderName, badge: BadgeNumber) -> Input {
        let local = match self.store.find_badge(&badge).await {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(cause = %err, "cannot read the local badge table; asking the directory");
                None
            }
        };
        let (directory, policy) = self.current();
        let resolution = match local {
            Some(local) => Resolution::Known { user: local.user },
            None => directory.lookup(&badge).await,
        };
        let resolution = policy.apply(&badge, resolution);
        let word = resolution_word(&resolution);
        tracing::debug!(reader = %reader, badge = %badge, resolution = word, "tap on reader {reader}: badge {badge} is {word}");
        Input::Tap {
            reader,
            badge,
            resolution,
        }
    }
}

fn resolution_word(resolution: &Resolution) -> &'static str {
    match resolution {
        Resolution::Known { .. } => "known",
        Resolution::Unknown => "unknown",
        Resolution::Denied { .. } => "denied",
        Resolution::Unavailable { .. } => "directory-unavailable",
    }
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if compact.is_empty()
        || compact.len() % 2 != 0
        || !compact.chars().all(|c| c.is_ascii_hexdigit())
    {
        return None;
    }
    (0..compact.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&compact[i..i + 2], 16).ok())
        .collect()
}

/// Forwards reader events to the engine, resolving taps concurrently.
pub async fn run_reader_events(
    resolver: Arc<TapResolver>,
    mut events: mpsc::Receiver<ReaderEvent>,
    engine: mpsc::Sender<EngineMsg>,
    cancel: CancellationToken,
) {
    let mut lookups = JoinSet::new();
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => break,
            Some(_) = lookups.join_next(), if !lookups.is_empty() => continue,
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        match event {
            ReaderEvent::Tap { reader, raw } => {
                let resolver = Arc::clone(&resolver);
                let engine = engine.clone();
                lookups.spawn(async move {
                    let input = resolver.resolve_raw(reader, &raw).await;
                    let _ = engine.send(EngineMsg::Input(input)).await;
                });
            }
            ReaderEvent::BadRead { reader, reason } => {
                tracing::warn!(reader = %reader, reason = %reason, "unusable badge read");
                let _ = engine
                    .send(EngineMsg::Input(Input::BadRead { reader, reason }))
                    .await;
            }
            ReaderEvent::Online { reader } => {
                tracing::info!(reader = %reader, "reader online");
                let _ = engine
                    .send(EngineMsg::Input(Input::ReaderStatus {
                        reader,
                        online: true,
                        detail: None,
                    }))
                    .await;
            }
            ReaderEvent::Offline { reader, detail } => {
                tracing::warn!(reader = %reader, detail = %detail, "reader offline");
                let _ = engine
                    .send(EngineMsg::Input(Input::ReaderStatus {
                        reader,
                        online: false,
                        detail: Some(detail),
                    }))
                    .await;
            }
        }
    }
    lookups.abort_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("DEADBEEF"), Some(vec![0xDE, 0xAD, 0xBE, 0xEF]));
        assert_eq!(parse_hex("de:ad"), Some(vec![0xDE, 0xAD]));
        assert_eq!(parse_hex("ABC"), None);
        assert_eq!(parse_hex("12345Z"), None);
        assert_eq!(parse_hex(""), None);
    }
}
