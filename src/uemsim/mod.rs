//! The Workspace ONE UEM simulator (`badgedock uem-sim`): a real HTTP server that answers
//! like a tenant, for the demo and the tests.
//!
//! It reproduces what `ws1/API.md` and the saved bodies show: `/connect/token` with
//! client credentials and expiring tokens; Basic + `aw-tenant-code` (401 errorCode 1005,
//! 403 errorCode 1013) or Bearer with or without the tenant code; PascalCase v1 bodies with
//! `{"Id":{"Value":n}}` ids; device lookup by alternate id (parameter names and values in
//! any case) and by id; 204 on an empty search; a substring, case-insensitive user search
//! over a tenant where usernames repeat; the enrolment-user PATCH (version 2 only; 400
//! unless the device is Apple and was enrolled by a multi-user staging account; 404 for
//! an unknown device or user); commands (202, wipes become pending); organization-group
//! moves; an IIS HTML page for unknown routes; and the `x-ratelimit-*`,
//! `x-correlation-id`, `x-api-version` and `api-supported-versions` headers.
//!
//! State comes from a seed file ([`Seed`], documented in `seed.rs`; the built-in one is
//! `default_seed.json`). Every call is journalled ([`JournalEntry`]). Faults ([`Fault`],
//! written as for `--fault`, see [`parse_fault`]) are set at start in [`SimOptions`] or at
//! run time through [`SimHandle`] or the admin routes, which are never faulted:
//!
//! | route | does |
//! |---|---|
//! | `GET /_sim/journal[?since=SEQ]` | the journal as JSON |
//! | `DELETE /_sim/journal` | empties it |
//! | `GET /_sim/state` | devices, users, groups, faults, quota ([`SimStateView`]) |
//! | `GET /_sim/devices/{id}` | one device ([`SimDevice`]) |
//! | `POST /_sim/faults` | adds faults: `["500:3", "outage:300s"]` |
//! | `DELETE /_sim/faults` | removes every fault, ends an outage, zero latency |
//! | `POST /_sim/ratelimit` | `{"limit": 1000, "remaining": 50, "reset-in-seconds": 60}` |
//! | `POST /_sim/webhook/{name}[?status=N]` | a webhook receiver that journals the body |
//!
//! Two device routes are UNVERIFIED (no public reference was found; badgedock keeps
//! their paths configurable): `POST /API/mdm/devices/{id}/messages/push`
//! (`{"MessageBody": …}`, 202) and `PUT /API/mdm/devices/{uuid}/lostmode/{enable|disable}`
//! (`{"message", "phoneNumber", "footnote"}`, 202; iOS only). `GET /_sim/devices/{id}`
//! shows `lost-mode` and `messages`.

mod api;
mod fault;
mod seed;
mod server;
mod state;

pub use fault::{parse_fault, Fault, Scope};
pub use seed::{
    Seed, SeedAccount, SeedClient, SeedDevice, SeedGroup, SeedUser, SimPlatform, Staging,
    DEFAULT_SEED_JSON,
};
pub use server::{serve, start, SimHandle};
pub use state::{JournalEntry, RateLimit, SimDevice, SimGroup, SimStateView, SimUser};

use std::path::PathBuf;
use std::time::Duration;

/// The built-in seed's OAuth client id (the demo and the end-to-end tests use it).
pub const DEMO_CLIENT_ID: &str = "badgedock-demo";
/// The built-in seed's OAuth client secret: a public test value, not a secret.
pub const DEMO_CLIENT_SECRET: &str = "sim-client-secret-4west";
/// The built-in seed's multi-user staging account.
pub const DEMO_STAGING_USER: &str = "staging-4west";

/// How to start the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOptions {
    /// The seed file; the built-in seed when `None`.
    pub seed: Option<PathBuf>,
    /// Delay before every answer (`--latency-ms`).
    pub latency_ms: u64,
    /// Faults in force from the start (`--fault`, repeatable).
    pub faults: Vec<Fault>,
    /// Lifetime of issued tokens (one hour on SaaS).
    pub token_lifetime: Duration,
    /// `x-ratelimit-limit`: calls per 24 h before 429 (250 000 on the recorded tenant).
    pub rate_limit: u64,
    /// A tenant-wide throttle on top of the daily quota: at most this many API calls per
    /// second (a token bucket holding one second's worth), 429 with `Retry-After`
    /// beyond it (`--rate-per-second`); `None`: no throttle. The recorded tenant shows
    /// only the daily quota; a per-second limit is a model, not a recorded behaviour.
    pub per_second: Option<u32>,
    /// How long a `timeout` fault holds a call before answering 504 (the client has
    /// normally given up long before).
    pub hang: Duration,
    /// A wiped device enrols again to its staging account after this long
    /// (`--reenrol-after-ms`; `None`: never).
    pub reenrol_after: Option<Duration>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: None,
            latency_ms: 0,
            faults: Vec::new(),
            token_lifetime: Duration::from_secs(3600),
            rate_limit: 250_000,
            per_second: None,
            hang: Duration::from_secs(300),
            reenrol_after: Some(Duration::from_secs(3)),
        }
    }
}
