//! The station's fleet task: publishes the audit log (by sequence, after a durable
//! cursor), the current slots and loans, and a heartbeat; reads the loans held at other
//! stations and the console's admin requests for this station, and hands both to the
//! engine as inputs. Spawned once by the daemon; every failure is logged and retried
//! with backoff, never passed on to the tap path.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::checkout::{AdminCommand, Input, LoanView, RemoteLoan, SlotView, Snapshot};
use crate::config::{Config, FleetConfig};
use crate::daemon::engine_loop::EngineMsg;
use crate::domain::{Timestamp, Username};
use crate::fleet::connect::{connect, FleetError};
use crate::store::{AuditRecord, Store};

/// The publisher's row in the store's `audit_cursors` (retention keeps what it has not
/// published).
const AUDIT_CURSOR: &str = "fleet";
/// Audit lines per PostgreSQL transaction.
const BATCH: usize = 500;
/// A heartbeat at least this often, even when nothing changed.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);
/// Consecutive failed rounds after which the station says the fleet is unreachable.
const UNREACHABLE_AFTER: u32 = 2;

/// The station's side of the fleet.
pub struct FleetTask {
    config: FleetConfig,
    store: Store,
    snapshots: watch::Receiver<Snapshot>,
    engine: mpsc::Sender<EngineMsg>,
    cancel: CancellationToken,
}

/// What the last successful round published, to skip unchanged work.
#[derive(Default)]
struct Published {
    slots: Vec<SlotView>,
    loans: Vec<LoanView>,
    heartbeat_at: Option<tokio::time::Instant>,
    remote: Option<Vec<RemoteLoan>>,
    /// Console requests handed to the engine by this process and not yet found done in
    /// the store (not handed over again meanwhile).
    handed: BTreeSet<i64>,
}

impl FleetTask {
    /// The task for a station whose config has a `[fleet]` section; `None` otherwise.
    pub fn new(
        config: &Config,
        store: Store,
        snapshots: watch::Receiver<Snapshot>,
        engine: mpsc::Sender<EngineMsg>,
        cancel: CancellationToken,
    ) -> Option<FleetTask> {
        Some(FleetTask {
            config: config.fleet.clone()?,
            store,
            snapshots,
            engine,
            cancel,
        })
    }

    /// Runs until cancelled.
    pub async fn run(mut self) {
        let mut client: Option<Client> = None;
        let mut published = Published::default();
        let mut failures: u32 = 0;
        let mut said_unreachable = false;
        tracing::info!(url = %self.config.url, station = %self.config.station_id, "fleet publisher started");
        loop {
            if client.is_none() {
                match connect(&self.config).await {
                    Ok(connected) => {
                        tracing::info!(url = %self.config.url, "connected to the fleet store");
                        client = Some(connected);
                        let handed = std::mem::take(&mut published.handed);
                        published = Published {
                            handed,
                            ..Published::default()
                        };
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(cause = %err, failures, "fleet store unreachable; the station carries on alone and will publish later");
                    }
                }
            }
            if let Some(connected) = client.as_mut() {
                match self.round(connected, &mut published).await {
                    Ok(()) => {
                        failures = 0;
                        said_unreachable = false;
                    }
                    Err(RoundError::Fleet(err)) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(cause = %err, failures, "fleet publishing failed; retrying");
                        client = None;
                    }
                    Err(RoundError::Store(err)) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(cause = %err, "fleet publisher cannot read the store; retrying");
                    }
                    Err(RoundError::EngineGone) => break,
                }
            }
            if failures >= UNREACHABLE_AFTER && !said_unreachable {
                said_unreachable = true;
                published.remote = None;
                let input = Input::FleetLoans {
                    reachable: false,
                    loans: Vec::new(),
                };
                if self.engine.send(EngineMsg::Input(input)).await.is_err() {
                    break;
                }
            }
            let pause = if failures == 0 {
                self.config.poll
            } else {
                // 1 s, 2 s, 4 s … up to 30 s while the fleet store is away.
                Duration::from_secs(1u64 << failures.min(5).saturating_sub(1))
                    .min(Duration::from_secs(30))
            };
            tokio::select! {
                () = self.cancel.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
                changed = self.snapshots.changed(), if failures == 0 => {
                    if changed.is_err() {
                        break;
                    }
                    // Let a burst of inputs settle into one publication.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tracing::info!("fleet publisher stopped");
    }

    /// One round: audit, slots and loans, heartbeat, other stations' loans, admin
    /// requests.
    async fn round(
        &self,
        client: &mut Client,
        published: &mut Published,
    ) -> Result<(), RoundError> {
        self.publish_audit(client).await?;
        let snapshot = self.snapshots.borrow().clone();
        let heartbeat_due = published
            .heartbeat_at
            .is_none_or(|at| at.elapsed() >= HEARTBEAT_EVERY);
        if heartbeat_due || snapshot.slots != published.slots || snapshot.loans != published.loans {
            self.publish_state(client, &snapshot).await?;
            published.slots = snapshot.slots.clone();
            published.loans = snapshot.loans.clone();
            published.heartbeat_at = Some(tokio::time::Instant::now());
        }
        let remote = self.remote_loans(client).await?;
        if published.remote.as_ref() != Some(&remote) {
            published.remote = Some(remote.clone());
            let input = Input::FleetLoans {
                reachable: true,
                loans: remote,
            };
            self.engine
                .send(EngineMsg::Input(input))
                .await
                .map_err(|_| RoundError::EngineGone)?;
        }
        self.carry_out_admin_requests(client, &mut published.handed)
            .await
    }

    /// Sends every audit line after the cursor, a batch per transaction, moving the
    /// cursor after each commit.
    async fn publish_audit(&self, client: &mut Client) -> Result<(), RoundError> {
        let mut cursor = self.store.audit_cursor(AUDIT_CURSOR).await?.unwrap_or(0);
        loop {
            let batch = self.store.audit_after(cursor, BATCH).await?;
            let Some(last) = batch.last().map(|line| line.seq) else {
                return Ok(());
            };
            insert_events(client, &self.config.station_id, &batch)
                .await
                .map_err(|source| self.pg_error(source))?;
            self.store.set_audit_cursor(AUDIT_CURSOR, last).await?;
            tracing::debug!(from = cursor + 1, to = last, "audit published to the fleet");
            cursor = last;
        }
    }

    /// Replaces this station's slots and loans and upserts its heartbeat, in one
    /// transaction.
    async fn publish_state(
        &self,
        client: &mut Client,
        snapshot: &Snapshot,
    ) -> Result<(), RoundError> {
        let me = self.config.station_id.as_str();
        let pg = |source| self.pg_error(source);
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("DELETE FROM badgedock.slots WHERE station_id = $1", &[&me])
            .await
            .map_err(pg)?;
        let insert_slot = tx
            .prepare(
                "INSERT INTO badgedock.slots
                 (station_id, label, position, state, device, platform, device_name, holder, since, sync)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .await
            .map_err(pg)?;
        for (position, slot) in snapshot.slots.iter().enumerate() {
            let position = i32::try_from(position).unwrap_or(i32::MAX);
            let state = word(&slot.state);
            let device = slot.device.as_ref().map(|d| d.id.clone());
            let platform = slot.device.as_ref().map(|d| word(&d.platform));
            let since = slot.since.map(time);
            let sync = word(&slot.sync);
            tx.execute(
                &insert_slot,
                &[
                    &me,
                    &slot.label.as_str(),
                    &position,
                    &state,
                    &device,
                    &platform,
                    &slot.device_name,
                    &slot.holder,
                    &since,
                    &sync,
                ],
            )
            .await
            .map_err(pg)?;
        }
        tx.execute("DELETE FROM badgedock.loans WHERE station_id = $1", &[&me])
            .await
            .map_err(pg)?;
        let insert_loan = tx
            .prepare(
                "INSERT INTO badgedock.loans
                 (station_id, device, platform, device_name, username, holder, slot, since, overdue)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .await
            .map_err(pg)?;
        for loan in &snapshot.loans {
            tx.execute(
                &insert_loan,
                &[
                    &me,
                    &loan.device.id,
                    &word(&loan.device.platform),
                    &loan.device_name,
                    &loan.username.as_str(),
                    &loan.holder,
                    &loan.slot.as_str(),
                    &time(loan.since),
                    &loan.overdue,
                ],
            )
            .await
            .map_err(pg)?;
        }
        let readers_online = count(snapshot.readers.iter().filter(|r| r.online).count());
        let readers_total = count(snapshot.readers.len());
        let slots_ready = count(
            snapshot
                .slots
                .iter()
                .filter(|s| s.state == crate::checkout::SlotState::Available)
                .count(),
        );
        let healthy = readers_online == readers_total && snapshot.mdm.reachable != Some(false);
        let health = if healthy { "ok" } else { "degraded" };
        let waiting = i32::try_from(snapshot.mdm.waiting).unwrap_or(i32::MAX);
        let detail = snapshot.mdm.last_error.clone().unwrap_or_default();
        tx.execute(
            "INSERT INTO badgedock.heartbeats
             (station_id, at, version, health, readers_online, readers_total, mdm_reachable,
              actions_waiting, slots_ready, slots_total, loans, detail)
             VALUES ($1, now(), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (station_id) DO UPDATE SET
              at = excluded.at, version = excluded.version, health = excluded.health,
              readers_online = excluded.readers_online, readers_total = excluded.readers_total,
              mdm_reachable = excluded.mdm_reachable, actions_waiting = excluded.actions_waiting,
              slots_ready = excluded.slots_ready, slots_total = excluded.slots_total,
              loans = excluded.loans, detail = excluded.detail",
            &[
                &me,
                &env!("CARGO_PKG_VERSION"),
                &health,
                &readers_online,
                &readers_total,
                &snapshot.mdm.reachable,
                &waiting,
                &slots_ready,
                &count(snapshot.slots.len()),
                &count(snapshot.loans.len()),
                &detail,
            ],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(())
    }

    /// Loans open at the other stations.
    async fn remote_loans(&self, client: &Client) -> Result<Vec<RemoteLoan>, RoundError> {
        let rows = client
            .query(
                "SELECT s.name, l.username, l.since
                 FROM badgedock.loans l JOIN badgedock.stations s USING (station_id)
                 WHERE l.station_id <> $1
                 ORDER BY l.username, l.since",
                &[&self.config.station_id],
            )
            .await
            .map_err(|source| self.pg_error(source))?;
        Ok(rows
            .iter()
            .map(|row| RemoteLoan {
                cabinet: row.get(0),
                username: Username::new(row.get::<_, String>(1)),
                since: Timestamp(row.get::<_, DateTime<Utc>>(2).timestamp_millis()),
            })
            .collect())
    }

    /// The console's open requests for this station. Each is handed to the engine as
    /// `Input::FleetAdmin`, whose commit records it (`fleet_admin_done`, with what came of
    /// it) in the same SQLite transaction as its effect; a request is acknowledged to
    /// PostgreSQL (done_at, outcome) only once the store shows it done. So a crash at any
    /// point neither loses a request nor carries one out twice.
    async fn carry_out_admin_requests(
        &self,
        client: &mut Client,
        handed: &mut BTreeSet<i64>,
    ) -> Result<(), RoundError> {
        let pg = |source| self.pg_error(source);
        let rows = client
            .query(
                "SELECT id, command, requested_by FROM badgedock.admin_requests
                 WHERE station_id = $1 AND done_at IS NULL ORDER BY id",
                &[&self.config.station_id],
            )
            .await
            .map_err(pg)?;
        for row in rows {
            let id: i64 = row.get(0);
            let command: serde_json::Value = row.get(1);
            let requested_by: String = row.get(2);
            let outcome = match self.store.fleet_request_done(id).await? {
                Some(outcome) => {
                    handed.remove(&id);
                    outcome
                }
                None => match serde_json::from_value::<AdminCommand>(command) {
                    // Nothing was done: acknowledging it at once is safe.
                    Err(err) => format!("refused: this station does not know the command ({err})"),
                    Ok(_) if handed.contains(&id) => continue,
                    Ok(command) => {
                        tracing::info!(request = id, by = %requested_by, "fleet console admin request handed to the engine");
                        self.engine
                            .send(EngineMsg::Input(Input::FleetAdmin {
                                request: id,
                                requested_by,
                                command,
                            }))
                            .await
                            .map_err(|_| RoundError::EngineGone)?;
                        handed.insert(id);
                        // Acknowledged in a later round, once the store shows it done.
                        continue;
                    }
                },
            };
            client
                .execute(
                    "UPDATE badgedock.admin_requests SET done_at = now(), outcome = $2
                     WHERE id = $1 AND done_at IS NULL",
                    &[&id, &outcome],
                )
                .await
                .map_err(pg)?;
        }
        Ok(())
    }

    fn pg_error(&self, source: tokio_postgres::Error) -> RoundError {
        RoundError::Fleet(FleetError::Postgres {
            url: self.config.url.clone(),
            source,
        })
    }
}

/// Inserts a batch of audit lines in one transaction; lines already there are skipped.
pub(crate) async fn insert_events(
    client: &mut Client,
    station_id: &str,
    batch: &[AuditRecord],
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let insert = tx
        .prepare(
            "INSERT INTO badgedock.events
             (station_id, seq, at, kind, reader, badge, username, device, slot, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (station_id, seq) DO NOTHING",
        )
        .await?;
    for line in batch {
        let entry = &line.entry;
        tx.execute(
            &insert,
            &[
                &station_id,
                &line.seq,
                &time(entry.at),
                &entry.kind.as_str(),
                &entry.reader.as_ref().map(|r| r.to_string()),
                &entry.badge,
                &entry.username.as_ref().map(|u| u.as_str()),
                &entry.device.as_ref().map(|d| d.id.clone()),
                &entry.slot.as_ref().map(|s| s.as_str()),
                &entry.detail,
            ],
        )
        .await?;
    }
    tx.commit().await
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the engine stopped")]
    EngineGone,
}

fn time(at: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.0).unwrap_or_default()
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The serde name of a unit variant (`available`, `apple`, `synced`).
fn word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}
