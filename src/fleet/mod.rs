//! **Boundary.** The fleet: stations publish to one PostgreSQL fleet store, read the
//! loans held at other stations, and carry out the console's admin requests.
//!
//! - [`connect`] opens a tokio-postgres connection (rustls with the configured CA, a
//!   client certificate or a password from its file).
//! - [`migrate`] applies the project's schema (`fleet/migrations/`, refinery).
//! - [`FleetTask`] is the station's side, spawned by the daemon when `[fleet]` is set.
//!   It never sits on the tap path: the engine only ever sees `Input::FleetLoans` and
//!   `Input::Admin`, and taps never wait for PostgreSQL.
//!
//! Exactly once in effect: audit lines are sent by sequence after a durable cursor kept
//! in the station's SQLite store, moved only after PostgreSQL committed the batch; a
//! batch sent again (after a crash or a lost answer) hits the primary key
//! (station, seq) and `ON CONFLICT DO NOTHING`.

mod connect;
pub mod console;
mod publisher;

pub use connect::{connect, migrate, FleetError};
pub use publisher::FleetTask;

/// The SQL that creates the group roles (`badgedock_station`, `badgedock_console`);
/// run once per cluster by a superuser before [`migrate`]. Shipped as `fleet/roles.sql`.
pub const ROLES_SQL: &str = include_str!("../../fleet/roles.sql");
