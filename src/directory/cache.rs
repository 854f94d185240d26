//! The answer cache shared by the network directories (LDAP and HTTP).
//!
//! A tap must not wait on a directory server that answered the same question a moment
//! ago, and must still work while that server is down. So every definite answer (a user,
//! or "nobody has this badge") is kept with the time it was fetched: within its lifetime
//! it is served without asking; after that the server is asked again, and if the server
//! cannot answer, the old answer is served anyway ("stale"). Only a badge that was never
//! answered gets `Unavailable`.
//!
//! After a failed request the server is left alone for a short while ([`RETRY_AFTER`]):
//! badges with a cached answer are then served at once instead of each tap waiting out a
//! connection timeout, while badges with nothing cached still try the server.
//!
//! The cache takes the current time from its caller, so tests cross a lifetime without
//! sleeping.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::badges::Resolution;
use crate::domain::{BadgeNumber, User};

/// Most answers kept. A station sees a few thousand badges at most; past this the oldest
/// answers are dropped so a badge-guessing loop cannot grow the daemon without bound.
const MAX_ENTRIES: usize = 50_000;

/// Negative answers live at most this long, whatever the configured lifetime: a badge
/// issued this morning should work within a minute, not after the hour a positive
/// answer may be kept.
const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(60);

/// How long cached badges skip the server after it failed to answer.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(10);

/// A definite answer from a directory server.
pub(crate) type Answer = Option<User>;

/// What the cache holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cached {
    /// Within its lifetime: serve it without asking the server.
    Fresh(Answer),
    /// Past its lifetime: ask the server, serve this if the server cannot answer.
    Stale(Answer),
    /// Never answered.
    Missing,
}

struct Entry {
    answer: Answer,
    fetched_at: Instant,
}

/// Answers by badge number, with one lifetime for users and a shorter one for unknowns.
pub(crate) struct AnswerCache {
    ttl: Duration,
    negative_ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl AnswerCache {
    /// A cache whose answers live `ttl_seconds` (0: always ask, serve only while down).
    pub(crate) fn new(ttl_seconds: u64) -> AnswerCache {
        let ttl = Duration::from_secs(ttl_seconds);
        AnswerCache {
            ttl,
            negative_ttl: ttl.min(MAX_NEGATIVE_TTL),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// What is known about `key` at `now`.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Cached {
        let entries = self.lock();
        let Some(entry) = entries.get(key) else {
            return Cached::Missing;
        };
        let lifetime = if entry.answer.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        if now.saturating_duration_since(entry.fetched_at) < lifetime {
            Cached::Fresh(entry.answer.clone())
        } else {
            Cached::Stale(entry.answer.clone())
        }
    }

    /// Records a definite answer fetched at `now`.
    pub(crate) fn put(&self, key: &str, answer: Answer, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.fetched_at)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            key.to_string(),
            Entry {
                answer,
                fetched_at: now,
            },
        );
    }

    /// How many answers are kept.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The configured lifetime of a positive answer, for `describe`.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave a half-written map (each operation
        // is a single insert or remove), so a poisoned lock is still safe to use.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a directory server gave no definite answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Down, slow, refusing the TLS handshake or answering nonsense: a cached answer,
    /// however old, is served instead.
    Unreachable(String),
    /// The server answered, but the answer cannot be used (a badge on several entries):
    /// no cached answer hides that, the operator must fix the directory.
    Conflict(String),
}

/// The last failure of a network directory, for status, and the short back-off after it.
#[derive(Default)]
pub(crate) struct Health {
    state: Mutex<HealthState>,
}

#[derive(Default)]
struct HealthState {
    last_failure: Option<String>,
    retry_after: Option<Instant>,
}

impl Health {
    /// The last failure, when the last request failed.
    pub(crate) fn problem(&self) -> Option<String> {
        self.lock().last_failure.clone()
    }

    /// Records a successful request.
    pub(crate) fn succeeded(&self) {
        let mut state = self.lock();
        if let Some(previous) = state.last_failure.take() {
            tracing::info!(previous = %previous, "directory answers again");
        }
        state.retry_after = None;
    }

    /// Records a failure; `unreachable` failures start the back-off.
    pub(crate) fn failed(&self, reason: &str, unreachable: bool, now: Instant) {
        let mut state = self.lock();
        if state.last_failure.as_deref() != Some(reason) {
            tracing::warn!(reason = %reason, "directory request failed");
        }
        state.last_failure = Some(reason.to_string());
        if unreachable {
            state.retry_after = Some(now + RETRY_AFTER);
        }
    }

    fn backing_off(&self, now: Instant) -> bool {
        self.lock().retry_after.is_some_and(|until| now < until)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Answers `badge` from the cache when it is fresh, else asks `fetch`, falling back to a
/// stale answer when the server is unreachable.
pub(crate) async fn resolve_cached<Fut>(
    cache: &AnswerCache,
    health: &Health,
    badge: &BadgeNumber,
    fetch: impl FnOnce() -> Fut,
) -> Resolution
where
    Fut: Future<Output = Result<Answer, Failure>>,
{
    let stale = match cache.get(badge.expose(), Instant::now()) {
        Cached::Fresh(answer) => return resolution(answer),
        Cached::Stale(answer) => Some(answer),
        Cached::Missing => None,
    };
    if let Some(answer) = &stale {
        if health.backing_off(Instant::now()) {
            tracing::debug!(badge = %badge, "directory recently unreachable: serving the cached answer");
            return resolution(answer.clone());
        }
    }
    match fetch().await {
        Ok(answer) => {
            health.succeeded();
            cache.put(badge.expose(), answer.clone(), Instant::now());
            resolution(answer)
        }
        Err(Failure::Unreachable(reason)) => {
            health.failed(&reason, true, Instant::now());
            match stale {
                Some(answer) => {
                    tracing::warn!(badge = %badge, reason = %reason, "directory unreachable: serving the cached answer");
                    resolution(answer)
                }
                None => Resolution::Unavailable { reason },
            }
        }
        Err(Failure::Conflict(reason)) => {
            health.failed(&reason, false, Instant::now());
            Resolution::Unavailable { reason }
        }
    }
}

fn resolution(answer: Answer) -> Resolution {
    match answer {
        Some(user) => Resolution::Known { user },
        None => Resolution::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Username;

    fn alice() -> User {
        User {
            username: Username::new("alice"),
            display_name: "Alice".into(),
            groups: vec![],
            enroller: false,
        }
    }

    #[test]
    fn answers_go_stale_after_their_lifetime() {
        let cache = AnswerCache::new(3600);
        let start = Instant::now();
        assert_eq!(cache.get("A", start), Cached::Missing);
        cache.put("A", Some(alice()), start);
        cache.put("B", None, start);
        assert_eq!(cache.get("A", start), Cached::Fresh(Some(alice())));
        assert_eq!(cache.get("B", start), Cached::Fresh(None));

        let later = start + Duration::from_secs(61);
        assert_eq!(cache.get("A", later), Cached::Fresh(Some(alice())));
        assert_eq!(
            cache.get("B", later),
            Cached::Stale(None),
            "unknowns live a minute at most"
        );

        let much_later = start + Duration::from_secs(3600);
        assert_eq!(cache.get("A", much_later), Cached::Stale(Some(alice())));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn zero_lifetime_is_always_stale() {
        let cache = AnswerCache::new(0);
        let now = Instant::now();
        cache.put("A", Some(alice()), now);
        assert_eq!(cache.get("A", now), Cached::Stale(Some(alice())));
    }

    #[test]
    fn a_full_cache_drops_its_oldest_answer() {
        let cache = AnswerCache::new(3600);
        let start = Instant::now();
        for n in 0..MAX_ENTRIES {
            cache.put(
                &n.to_string(),
                None,
                start + Duration::from_millis(n as u64),
            );
        }
        cache.put("new", Some(alice()), start + Duration::from_secs(3000));
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(cache.get("0", start), Cached::Missing);
        assert_eq!(cache.get("1", start), Cached::Fresh(None));
    }

    fn fetch_count() -> std::cell::Cell<usize> {
        std::cell::Cell::new(0)
    }

    #[tokio::test]
    async fn fresh_answers_skip_the_server_and_stale_ones_cover_an_outage() {
        let cache = AnswerCache::new(0);
        let health = Health::default();
        let badge = BadgeNumber::new("DEADBEEF");
        let calls = fetch_count();
        let fetch_ok = || {
            calls.set(calls.get() + 1);
            async { Ok(Some(alice())) }
        };
        assert_eq!(
            resolve_cached(&cache, &health, &badge, fetch_ok).await,
            Resolution::Known { user: alice() }
        );
        let down = || {
            calls.set(calls.get() + 1);
            async { Err(Failure::Unreachable("server down".into())) }
        };
        assert_eq!(
            resolve_cached(&cache, &health, &badge, down).await,
            Resolution::Known { user: alice() },
            "stale answer served while down"
        );
        assert_eq!(health.problem().as_deref(), Some("server down"));
        assert_eq!(calls.get(), 2);
        assert_eq!(
            resolve_cached(&cache, &health, &badge, down).await,
            Resolution::Known { user: alice() }
        );
        assert_eq!(
            calls.get(),
            2,
            "backing off: the cached answer is served without asking"
        );
        assert_eq!(
            resolve_cached(&cache, &health, &BadgeNumber::new("0BADC0DE"), down).await,
            Resolution::Unavailable {
                reason: "server down".into()
            },
            "nothing cached: the server is still tried"
        );
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn conflicts_are_not_hidden_by_the_cache() {
        let cache = AnswerCache::new(0);
        let health = Health::default();
        let badge = BadgeNumber::new("DEADBEEF");
        cache.put(badge.expose(), Some(alice()), Instant::now());
        let conflict = || async {
            Err(Failure::Conflict(
                "badge found on 2 directory entries: fix the directory".into(),
            ))
        };
        assert!(matches!(
            resolve_cached(&cache, &health, &badge, conflict).await,
            Resolution::Unavailable { reason } if reason.contains("2 directory entries")
        ));
        let fetch_ok = || async { Ok(None) };
        assert_eq!(
            resolve_cached(&cache, &health, &badge, fetch_ok).await,
            Resolution::Unknown
        );
        assert_eq!(health.problem(), None, "a success clears the problem");
    }
}
