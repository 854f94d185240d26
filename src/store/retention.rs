//! The daemon's audit retention: at start and then daily, [`Store::prune_audit`] with
//! the configured horizon. `badgedock audit prune` runs the same path by hand.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::Timestamp;
use crate::store::Store;

/// How often retention runs.
const EVERY: Duration = Duration::from_secs(24 * 3600);

/// Prunes rows older than `keep` now and every day until `cancel` fires.
pub async fn run(store: Store, keep: Duration, cancel: CancellationToken) {
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        let before = now - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        match store.prune_audit(Timestamp(before), Timestamp(now)).await {
            Ok(Ok(pruned)) if pruned.n_removed > 0 => {
                tracing::info!(n_removed = pruned.n_removed, anchor = ?pruned.anchor_seq, "audit retention removed old rows");
            }
            Ok(Ok(_)) => {}
            Ok(Err(problem)) => {
                tracing::error!(%problem, "audit retention skipped: the chain is broken; run `badgedock audit verify`");
            }
            Err(error) => tracing::warn!(%error, "audit retention failed; it runs again tomorrow"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
