//! The simulator's state: the tenant (users, devices, groups), issued tokens, the fault
//! queue, the rate-limit counter and the journal of calls.
//!
//! One `std::sync::Mutex` guards it; it is held only for short, synchronous updates and
//! never across an `.await`, so handlers that sleep (latency, hanging calls) hold nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::uemsim::fault::{fault_count, ActiveFault, Fault, Hit};
use crate::uemsim::seed::{Seed, SimPlatform, Staging};

/// A device as the simulator holds it (and as `GET /_sim/state` shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SimDevice {
    /// `Id.Value`.
    pub id: i64,
    /// `Uuid`.
    pub uuid: String,
    /// Platform.
    pub platform: SimPlatform,
    /// `Udid` as stored (Apple).
    pub udid: Option<String>,
    /// `SerialNumber`.
    pub serial_number: String,
    /// `MacAddress`.
    pub mac_address: String,
    /// `DeviceFriendlyName`.
    pub name: String,
    /// `Model`.
    pub model: String,
    /// `OperatingSystem`.
    pub os_version: String,
    /// The enrolment user's id (`UserId.Id.Value`).
    pub user_id: i64,
    /// The enrolment user's name (`UserName`), kept in step with `user_id`.
    pub username: String,
    /// The staging account that enrolled it.
    pub staged_by: Option<i64>,
    /// `EnrollmentStatus`.
    pub enrollment_status: String,
    /// Organization group (`LocationGroupId`).
    pub group_id: i64,
    /// `Ownership`: `C` corporate, `E` employee-owned, `S` shared.
    #[serde(default)]
    pub ownership: String,
    /// When a wipe was received, until the device enrols again.
    #[serde(skip)]
    pub wiped_at: Option<Instant>,
    /// Commands received, in order (`SyncDevice`, `EnterpriseWipe`, …; Lost Mode as
    /// `EnableLostMode` and `DisableLostMode`).
    pub commands: Vec<String>,
    /// True while Lost Mode is on (UNVERIFIED route, see `api.rs`).
    #[serde(default)]
    pub lost_mode: bool,
    /// Messages pushed to the device (UNVERIFIED route).
    #[serde(default)]
    pub messages: Vec<String>,
}

/// A user account as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SimUser {
    /// `Id.Value`.
    pub id: i64,
    /// `Uuid`.
    pub uuid: String,
    /// `UserName`.
    pub username: String,
    /// `FirstName`.
    pub first_name: String,
    /// `LastName`.
    pub last_name: String,
    /// `Email`.
    pub email: String,
    /// `Status`.
    pub active: bool,
    /// `SecurityType`.
    pub security_type: i64,
    /// Staging mode.
    pub staging: Staging,
    /// Organization group.
    pub group_id: i64,
}

/// An organization group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SimGroup {
    /// `Id.Value`.
    pub id: i64,
    /// `Uuid`.
    pub uuid: String,
    /// Name.
    pub name: String,
}

/// One call the simulator received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JournalEntry {
    /// 1, 2, 3… in arrival order.
    pub seq: u64,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The status answered; 0 for a call held until the client gave up.
    pub status: u16,
    /// The `Accept` version asked for (1 when none), for API calls.
    pub api_version: Option<u8>,
    /// `bearer`, `basic`, `none`, or `client-credentials` for the token endpoint.
    pub auth: String,
    /// The device the call was about, when known.
    pub device_id: Option<i64>,
    /// The user the call was about, when known.
    pub user_id: Option<i64>,
    /// The fault injected into this call (`500`, `timeout`, `outage`, `malformed`, …).
    pub fault: Option<String>,
    /// The request body, for webhook calls only.
    pub body: Option<String>,
}

impl JournalEntry {
    /// True for calls to the UEM REST API (`/API/…`), not the token endpoint or webhooks.
    pub fn is_api(&self) -> bool {
        self.path.to_ascii_lowercase().starts_with("/api/")
    }

    /// True for calls to the token endpoint.
    pub fn is_token(&self) -> bool {
        self.path.to_ascii_lowercase().starts_with("/connect/token")
    }
}

/// The rate-limit counter behind the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RateLimit {
    /// `x-ratelimit-limit`.
    pub limit: u64,
    /// `x-ratelimit-remaining`, falling by one per API call; at 0 calls answer 429.
    pub remaining: u64,
    /// `x-ratelimit-reset`, Unix seconds.
    pub reset_unix: i64,
}

/// Everything `GET /_sim/state` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SimStateView {
    /// Devices by id.
    pub devices: Vec<SimDevice>,
    /// Users by id.
    pub users: Vec<SimUser>,
    /// Organization groups.
    pub organization_groups: Vec<SimGroup>,
    /// Faults still waiting to hit (text form) and time faults in force.
    pub faults: Vec<String>,
    /// The latency every call gets.
    pub latency_ms: u64,
    /// Milliseconds of outage left.
    pub outage_ms_left: u64,
    /// Tokens still valid.
    pub live_tokens: usize,
    /// The rate-limit counter.
    pub rate_limit: RateLimit,
}

/// The shared simulator.
pub(crate) struct Sim {
    pub(crate) state: Mutex<State>,
    /// Cancelled when the server shuts down: releases hanging calls.
    pub(crate) shutdown: CancellationToken,
    /// How long a `timeout` fault holds a call.
    pub(crate) hang: Duration,
    pub(crate) started: Instant,
    pub(crate) started_unix: i64,
    /// How long after a wipe the device enrols again to its staging user (the device is
    /// set up again by the next nurse, or by zero-touch enrolment); never when `None`.
    pub(crate) reenrol_after: Option<Duration>,
    /// The tenant-wide per-second throttle: calls per second, and the bucket (tokens,
    /// when last filled).
    pub(crate) per_second: Option<u32>,
    pub(crate) bucket: Mutex<(f64, Instant)>,
}

pub(crate) struct State {
    pub(crate) tenant_code: Option<String>,
    pub(crate) oauth_clients: Vec<(String, String)>,
    pub(crate) basic_accounts: Vec<(String, String)>,
    pub(crate) groups: BTreeMap<i64, SimGroup>,
    pub(crate) users: BTreeMap<i64, SimUser>,
    pub(crate) devices: BTreeMap<i64, SimDevice>,
    tokens: HashMap<String, Instant>,
    token_lifetime: Duration,
    tokens_issued: u64,
    faults: Vec<ActiveFault>,
    outage_until: Option<Instant>,
    latency: Duration,
    /// Seconds added to the clock in the `Date` header (`clock-skew:N`).
    clock_skew_s: i64,
    pub(crate) rate: RateLimit,
    journal: Vec<JournalEntry>,
    next_seq: u64,
}

/// Builds a GUID-shaped id from a number, stable across runs.
pub(crate) fn guid(kind: u32, n: u64) -> String {
    format!(
        "{kind:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (n >> 32) & 0xffff,
        (n >> 20) & 0xfff,
        (n >> 8) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// A well-mixed 64-bit value (splitmix64), for tokens and correlation ids.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One day, the quota window seen on SaaS.
const RATE_WINDOW_S: i64 = 86_400;

impl State {
    /// Wiped devices whose time has come enrol again, to the staging account that
    /// staged them, as Workspace ONE shows after a multi-user staging device is set up.
    fn reenrol_wiped(&mut self, after: Duration) {
        let due: Vec<i64> = self
            .devices
            .values()
            .filter(|d| d.wiped_at.is_some_and(|at| at.elapsed() >= after))
            .map(|d| d.id)
            .collect();
        for id in due {
            let staging = self
                .devices
                .get(&id)
                .and_then(|d| d.staged_by)
                .and_then(|staging| self.users.get(&staging))
                .map(|u| (u.id, u.username.clone()));
            if let Some(device) = self.devices.get_mut(&id) {
                device.wiped_at = None;
                device.enrollment_status = "Enrolled".into();
                if let Some((user_id, username)) = staging {
                    device.user_id = user_id;
                    device.username = username;
                }
            }
        }
    }
}

impl Sim {
    pub(crate) fn new(
        seed: Seed,
        latency: Duration,
        token_lifetime: Duration,
        rate_limit: u64,
        hang: Duration,
    ) -> Sim {
        let first_group = seed.organization_groups.first().map(|g| g.id).unwrap_or(0);
        let groups: BTreeMap<i64, SimGroup> = seed
            .organization_groups
            .iter()
            .map(|g| {
                (
                    g.id,
                    SimGroup {
                        id: g.id,
                        uuid: guid(0x06, g.id.unsigned_abs()),
                        name: g.name.clone(),
                    },
                )
            })
            .collect();
        let users: BTreeMap<i64, SimUser> = seed
            .users
            .iter()
            .map(|u| {
                (
                    u.id,
                    SimUser {
                        id: u.id,
                        uuid: guid(0x05, u.id.unsigned_abs()),
                        username: u.username.clone(),
                        first_name: u.first_name.clone(),
                        last_name: u.last_name.clone(),
                        email: u.email.clone(),
                        active: u.active,
                        security_type: u.security_type,
                        staging: u.staging,
                        group_id: u.group_id.unwrap_or(first_group),
                    },
                )
            })
            .collect();
        let devices = seed
            .devices
            .iter()
            .map(|d| {
                let username = users
                    .get(&d.user_id)
                    .map(|u| u.username.clone())
                    .unwrap_or_default();
                (
                    d.id,
                    SimDevice {
                        id: d.id,
                        uuid: guid(0x0d, d.id.unsigned_abs()),
                        platform: d.platform,
                        udid: d.udid.clone(),
                        serial_number: d.serial_number.clone(),
                        mac_address: d.mac_address.clone().unwrap_or_else(|| {
                            format!("F0DBE2{:06X}", d.id.unsigned_abs() & 0xff_ffff)
                        }),
                        name: d.name.clone(),
                        model: d.model.clone(),
                        os_version: d.os_version.clone(),
                        user_id: d.user_id,
                        username,
                        staged_by: d.staged_by,
                        enrollment_status: d.enrollment_status.clone(),
                        group_id: d.group_id.unwrap_or(first_group),
                        ownership: d.ownership.clone().unwrap_or_else(|| {
                            if d.staged_by.is_some() { "S" } else { "E" }.to_string()
                        }),
                        commands: Vec::new(),
                        lost_mode: false,
                        messages: Vec::new(),
                        wiped_at: None,
                    },
                )
            })
            .collect();
        let started_unix = unix_now();
        Sim {
            state: Mutex::new(State {
                tenant_code: seed.tenant_code.clone(),
                oauth_clients: seed
                    .oauth_clients
                    .iter()
                    .map(|c| (c.client_id.clone(), c.client_secret.clone()))
                    .collect(),
                basic_accounts: seed
                    .basic_accounts
                    .iter()
                    .map(|a| (a.username.clone(), a.password.clone()))
                    .collect(),
                groups,
                users,
                devices,
                tokens: HashMap::new(),
                token_lifetime,
                tokens_issued: 0,
                faults: Vec::new(),
                outage_until: None,
                latency,
                clock_skew_s: 0,
                rate: RateLimit {
                    limit: rate_limit,
                    remaining: rate_limit,
                    reset_unix: started_unix + RATE_WINDOW_S,
                },
                journal: Vec::new(),
                next_seq: 1,
            }),
            shutdown: CancellationToken::new(),
            hang,
            started: Instant::now(),
            started_unix,
            reenrol_after: Some(Duration::from_secs(3)),
            per_second: None,
            bucket: Mutex::new((0.0, Instant::now())),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(after) = self.reenrol_after {
            state.reenrol_wiped(after);
        }
        state
    }

    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Appends a journal entry, numbering it.
    pub(crate) fn record(&self, mut entry: JournalEntry) {
        entry.at_ms = self.elapsed_ms();
        let mut state = self.lock();
        entry.seq = state.next_seq;
        state.next_seq += 1;
        state.journal.push(entry);
    }

    pub(crate) fn journal_since(&self, since: u64) -> Vec<JournalEntry> {
        self.lock()
            .journal
            .iter()
            .filter(|e| e.seq > since)
            .cloned()
            .collect()
    }

    pub(crate) fn clear_journal(&self) {
        self.lock().journal.clear();
    }

    /// Applies faults: counted ones join the queue, the others take effect now.
    pub(crate) fn add_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        let mut state = self.lock();
        for fault in faults {
            match &fault {
                Fault::TokenExpiry => state.tokens.clear(),
                Fault::TokenLifetime { lifetime_ms } => {
                    state.token_lifetime = Duration::from_millis(*lifetime_ms)
                }
                Fault::Outage { duration_ms } => {
                    state.outage_until = Some(Instant::now() + Duration::from_millis(*duration_ms));
                }
                Fault::Latency { ms } => state.latency = Duration::from_millis(*ms),
                Fault::ClockSkew { seconds } => state.clock_skew_s = *seconds,
                counted => {
                    if let Some(count) = fault_count(counted) {
                        state.faults.push(ActiveFault {
                            fault: fault.clone(),
                            remaining: count,
                        });
                    }
                }
            }
        }
    }

    /// Removes every counted fault, ends any outage, sets latency and clock skew to zero.
    pub(crate) fn clear_faults(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.outage_until = None;
        state.latency = Duration::ZERO;
        state.clock_skew_s = 0;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// Seconds the simulator's `Date` header is ahead of (or, negative, behind) the clock.
    pub(crate) fn clock_skew_s(&self) -> i64 {
        self.lock().clock_skew_s
    }

    pub(crate) fn in_outage(&self) -> bool {
        let mut state = self.lock();
        match state.outage_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                state.outage_until = None;
                false
            }
            None => false,
        }
    }

    /// Takes the first counted fault (other than `malformed`) that matches this call.
    pub(crate) fn take_hit(&self, method: &str, path: &str) -> Option<Hit> {
        let mut state = self.lock();
        let index = state.faults.iter().position(|f| {
            f.hit().is_some() && f.scope().is_some_and(|s| s.matches(method, path))
        })?;
        let hit = state.faults[index].hit();
        consume(&mut state.faults, index);
        hit
    }

    /// Takes a matching `malformed` fault, for a call about to answer JSON.
    pub(crate) fn take_malformed(&self, method: &str, path: &str) -> bool {
        let mut state = self.lock();
        let index = state.faults.iter().position(|f| {
            matches!(f.fault, Fault::Malformed { .. })
                && f.scope().is_some_and(|s| s.matches(method, path))
        });
        match index {
            Some(index) => {
                consume(&mut state.faults, index);
                true
            }
            None => false,
        }
    }

    pub(crate) fn issue_token(&self) -> (String, u64) {
        let mut state = self.lock();
        state.tokens_issued += 1;
        let n = state.tokens_issued;
        let token = format!(
            "simtok{n}x{:016x}{:016x}",
            mix(n ^ self.started_unix.unsigned_abs()),
            mix(n.wrapping_mul(31))
        );
        let lifetime = state.token_lifetime;
        let now = Instant::now();
        state.tokens.retain(|_, expires| *expires > now);
        state.tokens.insert(token.clone(), now + lifetime);
        (token, lifetime.as_secs().max(1))
    }

    pub(crate) fn token_valid(&self, token: &str) -> bool {
        self.lock()
            .tokens
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    }

    /// Takes one call from the per-second throttle; `Err(seconds)` to wait when the
    /// tenant is over its rate.
    pub(crate) fn throttle(&self) -> Result<(), u64> {
        let Some(rate) = self.per_second.filter(|rate| *rate > 0) else {
            return Ok(());
        };
        let rate = f64::from(rate);
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, since) = *bucket;
        let tokens = (tokens + now.duration_since(since).as_secs_f64() * rate).min(rate);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            Ok(())
        } else {
            *bucket = (tokens, now);
            Err(((1.0 - tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    /// Counts one API call against the quota; false when the quota is spent.
    pub(crate) fn spend_quota(&self) -> (bool, RateLimit) {
        let mut state = self.lock();
        let now = unix_now();
        if now >= state.rate.reset_unix {
            state.rate.remaining = state.rate.limit;
            state.rate.reset_unix = now + RATE_WINDOW_S;
        }
        if state.rate.remaining == 0 {
            return (false, state.rate);
        }
        state.rate.remaining -= 1;
        (true, state.rate)
    }

    pub(crate) fn set_rate_limit(&self, limit: u64, remaining: u64, reset_in: Duration) {
        let mut state = self.lock();
        state.rate = RateLimit {
            limit,
            remaining: remaining.min(limit),
            reset_unix: unix_now()
                + i64::try_from(reset_in.as_secs())
                    .unwrap_or(RATE_WINDOW_S)
                    .max(1),
        };
    }

    pub(crate) fn view(&self) -> SimStateView {
        let state = self.lock();
        let now = Instant::now();
        let mut faults: Vec<String> = state
            .faults
            .iter()
            .map(|f| match &f.fault {
                Fault::ServerError { status, scope, .. } => {
                    format!("{status}:{}{scope}", f.remaining)
                }
                Fault::TooManyRequests {
                    retry_after_s: Some(seconds),
                    scope,
                    ..
                } => format!("429-retry-after:{seconds}:{}{scope}", f.remaining),
                Fault::TooManyRequests { scope, .. } => format!("429:{}{scope}", f.remaining),
                Fault::Timeout { scope, .. } => format!("timeout:{}{scope}", f.remaining),
                Fault::Malformed { scope, .. } => format!("malformed:{}{scope}", f.remaining),
                Fault::Unauthorized { scope, .. } => format!("401:{}{scope}", f.remaining),
                other => other.to_string(),
            })
            .collect();
        let outage_ms_left = state
            .outage_until
            .map(|until| {
                u64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX)
            })
            .unwrap_or(0);
        if outage_ms_left > 0 {
            faults.push(format!("outage:{outage_ms_left}ms"));
        }
        SimStateView {
            devices: state.devices.values().cloned().collect(),
            users: state.users.values().cloned().collect(),
            organization_groups: state.groups.values().cloned().collect(),
            faults,
            latency_ms: u64::try_from(state.latency.as_millis()).unwrap_or(u64::MAX),
            outage_ms_left,
            live_tokens: state
                .tokens
                .values()
                .filter(|expires| **expires > now)
                .count(),
            rate_limit: state.rate,
        }
    }
}

fn consume(faults: &mut Vec<ActiveFault>, index: usize) {
    if let Some(fault) = faults.get_mut(index) {
        fault.remaining = fault.remaining.saturating_sub(1);
        if fault.remaining == 0 {
            faults.remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uemsim::fault::parse_fault;

    fn sim() -> Sim {
        let seed = Seed::builtin().expect("seed");
        Sim::new(
            seed,
            Duration::ZERO,
            Duration::from_secs(3600),
            100,
            Duration::from_secs(1),
        )
    }

    #[test]
    fn counted_faults_hit_in_order_and_run_out() {
        let sim = sim();
        sim.add_faults(
            [parse_fault("500:2@PATCH"), parse_fault("429")]
                .into_iter()
                .map(|f| f.expect("fault")),
        );
        assert_eq!(
            sim.take_hit("GET", "/API/x"),
            Some(Hit::TooManyRequests(None))
        );
        assert_eq!(sim.take_hit("GET", "/API/x"), None);
        assert_eq!(sim.take_hit("PATCH", "/API/x"), Some(Hit::ServerError(500)));
        assert_eq!(sim.take_hit("PATCH", "/API/x"), Some(Hit::ServerError(500)));
        assert_eq!(sim.take_hit("PATCH", "/API/x"), None);
    }

    #[test]
    fn tokens_expire_on_demand() {
        let sim = sim();
        let (token, lifetime) = sim.issue_token();
        assert_eq!(lifetime, 3600);
        assert!(sim.token_valid(&token));
        sim.add_faults([Fault::TokenExpiry]);
        assert!(!sim.token_valid(&token));
    }

    #[test]
    fn quota_runs_out() {
        let sim = sim();
        sim.set_rate_limit(10, 1, Duration::from_secs(60));
        assert!(sim.spend_quota().0);
        let (allowed, rate) = sim.spend_quota();
        assert!(!allowed);
        assert_eq!(rate.remaining, 0);
    }

    #[test]
    fn guids_look_like_guids() {
        let id = guid(0x0d, 101);
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}
