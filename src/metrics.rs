//! Prometheus metrics: one exporter on a (loopback) TCP port and the few typed recording
//! functions the daemon calls.
//!
//! The station's health is watched from outside by scraping `/metrics` (DESIGN: metrics
//! plus journald, no home-made cluster). [`install`] starts the exporter of
//! `metrics-exporter-prometheus` and makes it the process-wide `metrics` recorder; the
//! recording functions below are no-ops until then, so tests and `demo` may call them
//! freely. Labels only ever carry small fixed vocabularies or configured reader names:
//! never a badge number, user name or device id (cardinality, and invariant 5).
//!
//! Names, all prefixed `badgedock_`:
//! - `taps_total{outcome}` counter: every badge tap, by what the station decided.
//! - `checkouts_total`, `checkins_total` counters: completed check-outs and check-ins.
//! - `outbox_depth` gauge: Workspace ONE actions waiting in the outbox.
//! - `mdm_request_duration_seconds{result}` histogram: one Workspace ONE API call, by result.
//! - `mdm_transient_failures_total` counter: calls that failed in a way that is retried.
//! - `checkouts_refused_total` counter: check-outs Workspace ONE refused after the tap.
//! - `mdm_up` gauge: 1 while Workspace ONE answers, 0 while it is unreachable.
//! - `mdm_last_success_timestamp_seconds` gauge: Unix time of the last successful call.
//! - `phones{state}` gauge: slots by state (`ready`, `set-aside`, `checking-in`, …) and
//!   `out` for phones on loan.
//! - `overdue_loans` gauge: loans past their due time.
//! - `escalation_steps_total{step}` counter: escalation ladder steps taken (`screen`,
//!   `webhook`, `email`, `message`, `lost-mode`, `lock`).
//! - `outbox_oldest_waiting_timestamp_seconds` gauge: since when the outbox has not been
//!   empty (Unix time; 0 when empty): `time() - …` is the age of the oldest waiting
//!   action, or an upper bound of it.
//! - `reader_online{reader}` gauge: 1 while a configured reader is present, else 0.
//! - `errors_total{kind}` counter: errors by kind.
//! - `store_writable` gauge: 1 while the store takes writes, 0 while its disk refuses
//!   them (full, read-only, failing) and taps are refused.
//! - `build_info{version}` gauge: always 1, carries the version.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Histogram buckets for one Workspace ONE call, in seconds. A SaaS call is usually well
/// under a second; an API admin backed by Active Directory adds about 2 s per call, and
/// the client gives up after `uem.request-timeout-ms` (20 s by default).
pub const MDM_LATENCY_BUCKETS: &[f64] =
    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0];

const TAPS: &str = "badgedock_taps_total";
const CHECKOUTS: &str = "badgedock_checkouts_total";
const CHECKINS: &str = "badgedock_checkins_total";
const OUTBOX_DEPTH: &str = "badgedock_outbox_depth";
const MDM_LATENCY: &str = "badgedock_mdm_request_duration_seconds";
const REFUSED_BY_MDM: &str = "badgedock_checkouts_refused_total";
const MDM_TRANSIENT: &str = "badgedock_mdm_transient_failures_total";
const MDM_UP: &str = "badgedock_mdm_up";
const MDM_LAST_SUCCESS: &str = "badgedock_mdm_last_success_timestamp_seconds";
const PHONES: &str = "badgedock_phones";
const OVERDUE: &str = "badgedock_overdue_loans";
const OLDEST_WAITING: &str = "badgedock_outbox_oldest_waiting_timestamp_seconds";
const ESCALATIONS: &str = "badgedock_escalation_steps_total";
/// The `step` values of `badgedock_escalation_steps_total`.
const ESCALATION_STEPS: &[&str] = &["screen", "webhook", "email", "message", "lost-mode", "lock"];

/// The `state` values of `badgedock_phones`, all present from the start.
const PHONE_STATES: &[&str] = &[
    "ready",
    "out",
    "reserved",
    "checking-in",
    "set-aside",
    "identifying",
    "unidentified",
    "broken",
];
/// The `outcome` values of `badgedock_taps_total` present from the start.
const TAP_OUTCOMES: &[&str] = &["accepted", "refused", "bad-read"];
/// The `result` values of the request histogram present from the start.
const MDM_RESULTS: &[&str] = &["ok", "transient", "rejected", "unauthorized"];
/// Results of a call that the outbox retries.
const TRANSIENT_RESULTS: &[&str] = &["transient"];

/// When the outbox last went from empty to not empty (Unix seconds), while not empty.
static WAITING_SINCE: std::sync::Mutex<Option<f64>> = std::sync::Mutex::new(None);
const READER_ONLINE: &str = "badgedock_reader_online";
const ERRORS: &str = "badgedock_errors_total";
const BUILD_INFO: &str = "badgedock_build_info";
const STORE_WRITABLE: &str = "badgedock_store_writable";

/// Set once the exporter is the process-wide recorder; `metrics` allows only one.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Why the metrics endpoint could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound (in use, not local, no permission).
    #[error("cannot serve metrics on {listen}: {reason}; choose a free port in [metrics] listen, or remove the key to turn metrics off")]
    Listen {
        /// The configured address.
        listen: SocketAddr,
        /// What the OS said.
        reason: String,
    },
    /// [`install`] already ran in this process; the first endpoint keeps serving.
    #[error("metrics are already being exported by this process; install() runs once per process")]
    AlreadyInstalled,
    /// Any other exporter failure (runtime, recorder).
    #[error("cannot start the metrics exporter: {0}")]
    Exporter(String),
}

/// Starts serving Prometheus metrics on `listen` (`http://listen/metrics`) and records
/// from now on. Call it once, early in `run`, from inside the tokio runtime (the exporter
/// task is spawned on it; without a runtime the exporter gets its own thread).
pub fn install(listen: SocketAddr) -> Result<(), MetricsError> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Err(MetricsError::AlreadyInstalled);
    }
    let result = PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Full(MDM_LATENCY.to_string()), MDM_LATENCY_BUCKETS)
        .and_then(PrometheusBuilder::install);
    match result {
        Ok(()) => {
            describe();
            // Series that exist from the first scrape, so rate() and absent() work.
            metrics::counter!(CHECKOUTS).absolute(0);
            metrics::counter!(CHECKINS).absolute(0);
            metrics::gauge!(OUTBOX_DEPTH).set(0.0);
            for outcome in TAP_OUTCOMES {
                metrics::counter!(TAPS, "outcome" => *outcome).absolute(0);
            }
            for state in PHONE_STATES {
                metrics::gauge!(PHONES, "state" => *state).set(0.0);
            }
            for kind in ["mdm-action-failed", "unexpected-removal", "store"] {
                metrics::counter!(ERRORS, "kind" => kind).absolute(0);
            }
            for step in ESCALATION_STEPS {
                metrics::counter!(ESCALATIONS, "step" => *step).absolute(0);
            }
            metrics::counter!(MDM_TRANSIENT).absolute(0);
            metrics::counter!(REFUSED_BY_MDM).absolute(0);
            for result in MDM_RESULTS {
                // Registers the series; an empty histogram renders with zero counts.
                let _ = metrics::histogram!(MDM_LATENCY, "result" => *result);
            }
            metrics::gauge!(MDM_UP).set(1.0);
            metrics::gauge!(MDM_LAST_SUCCESS).set(0.0);
            metrics::gauge!(OVERDUE).set(0.0);
            metrics::gauge!(OLDEST_WAITING).set(0.0);
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            metrics::gauge!(STORE_WRITABLE).set(1.0);
            tracing::info!(%listen, "serving Prometheus metrics");
            Ok(())
        }
        Err(err) => {
            // Our own "installed" flag only follows a successful install: a port that
            // was busy may be retried with another one.
            let already = matches!(err, BuildError::FailedToSetGlobalRecorder(_));
            if !already {
                INSTALLED.store(false, Ordering::SeqCst);
            }
            Err(match err {
                BuildError::FailedToCreateHTTPListener(reason) => {
                    MetricsError::Listen { listen, reason }
                }
                BuildError::FailedToSetGlobalRecorder(_) => MetricsError::AlreadyInstalled,
                other => MetricsError::Exporter(other.to_string()),
            })
        }
    }
}

/// Whether the store takes writes (0 while its disk is full, read-only or failing:
/// taps are refused then).
pub fn store_writable(writable: bool) {
    metrics::gauge!(STORE_WRITABLE).set(if writable { 1.0 } else { 0.0 });
}

/// One badge tap, by what the station decided (a short fixed word such as `checkout`,
/// `unknown-badge`, `denied`, `limit`, `no-device`). Never a badge number.
pub fn tap(outcome: &str) {
    metrics::counter!(TAPS, "outcome" => outcome.to_string()).increment(1);
}

/// A check-out completed (the device left with its user).
pub fn checkout() {
    metrics::counter!(CHECKOUTS).increment(1);
}

/// A check-in completed (the device is back and its check-in work confirmed).
pub fn checkin() {
    metrics::counter!(CHECKINS).increment(1);
}

/// Workspace ONE actions currently waiting in the outbox.
pub fn outbox_depth(n: u64) {
    // f64 holds every depth a station can reach exactly (< 2^53).
    metrics::gauge!(OUTBOX_DEPTH).set(n as f64);
}

/// One Workspace ONE API call took `seconds`; `result` is a short fixed word such as
/// `ok`, `retry`, `rate-limited`, `auth`, `rejected`, `timeout`.
pub fn mdm_latency(seconds: f64, result: &str) {
    metrics::histogram!(MDM_LATENCY, "result" => result.to_string()).record(seconds);
    if result == "ok" {
        metrics::gauge!(MDM_LAST_SUCCESS).set(unix_now());
    } else if TRANSIENT_RESULTS.contains(&result) {
        metrics::counter!(MDM_TRANSIENT).increment(1);
    }
}

/// One committed audit entry: a check-out Workspace ONE refused ("DO NOT TAKE SLOT n")
/// counts as refused, although its tap was accepted when the nurse tapped.
pub fn audited(kind: &str, detail: &str) {
    if crate::daemon::journal::is_refused_by_workspace_one(kind, detail) {
        metrics::counter!(REFUSED_BY_MDM).increment(1);
    }
    // The ladder's steps: `overdue` is the screen step, `escalated` says "step NAME: …".
    let step = match kind {
        "overdue" => Some("screen"),
        "escalated" => detail
            .strip_prefix("step ")
            .and_then(|rest| rest.split(':').next())
            .and_then(|name| ESCALATION_STEPS.iter().copied().find(|s| *s == name)),
        _ => None,
    };
    if let Some(step) = step {
        metrics::counter!(ESCALATIONS, "step" => step).increment(1);
    }
}

/// The station's state after every engine step: phones by state, loans, overdue loans,
/// Workspace ONE up or down, the outbox and since when it has waited.
pub fn station(snapshot: &crate::checkout::Snapshot) {
    use crate::checkout::SlotState;
    let mut counts = [0u32; 8];
    for slot in &snapshot.slots {
        let index = match slot.state {
            SlotState::Available => Some(0),
            SlotState::Reserved => Some(2),
            SlotState::CheckingIn | SlotState::Erasing => Some(3),
            SlotState::SetAside => Some(4),
            SlotState::Broken => Some(7),
            SlotState::Identifying => Some(5),
            SlotState::Unidentified => Some(6),
            // Empty, or a phone that is not the station's.
            SlotState::Empty | SlotState::Foreign => None,
        };
        if let Some(index) = index {
            counts[index] += 1;
        }
    }
    counts[1] = u32::try_from(snapshot.loans.len()).unwrap_or(u32::MAX);
    for (state, count) in PHONE_STATES.iter().zip(counts) {
        metrics::gauge!(PHONES, "state" => *state).set(f64::from(count));
    }
    let overdue = snapshot.loans.iter().filter(|loan| loan.overdue).count();
    metrics::gauge!(OVERDUE).set(overdue as f64);
    metrics::gauge!(MDM_UP).set(if snapshot.mdm.reachable == Some(false) {
        0.0
    } else {
        1.0
    });
    outbox_depth(u64::from(snapshot.mdm.waiting));
    let mut since = WAITING_SINCE.lock().unwrap_or_else(|p| p.into_inner());
    if snapshot.mdm.waiting == 0 {
        *since = None;
    } else if since.is_none() {
        *since = Some(unix_now());
    }
    metrics::gauge!(OLDEST_WAITING).set(since.unwrap_or(0.0));
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A configured reader came or went.
pub fn reader_online(reader: &str, online: bool) {
    metrics::gauge!(READER_ONLINE, "reader" => reader.to_string()).set(if online {
        1.0
    } else {
        0.0
    });
}

/// An error of a given kind (a short fixed word such as `mdm`, `store`, `reader`,
/// `directory`, `dock`, `control`).
pub fn error(kind: &str) {
    metrics::counter!(ERRORS, "kind" => kind.to_string()).increment(1);
}

fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(
        TAPS,
        Unit::Count,
        "Badge taps, by what the station decided."
    );
    metrics::describe_counter!(CHECKOUTS, Unit::Count, "Completed check-outs.");
    metrics::describe_counter!(CHECKINS, Unit::Count, "Completed check-ins.");
    metrics::describe_gauge!(
        OUTBOX_DEPTH,
        Unit::Count,
        "Workspace ONE actions waiting in the outbox."
    );
    metrics::describe_histogram!(
        MDM_LATENCY,
        Unit::Seconds,
        "Duration of one Workspace ONE API call, by result."
    );
    metrics::describe_gauge!(
        READER_ONLINE,
        "1 while the configured reader is present, else 0."
    );
    metrics::describe_counter!(ERRORS, Unit::Count, "Errors, by kind.");
    metrics::describe_counter!(
        MDM_TRANSIENT,
        Unit::Count,
        "Workspace ONE calls that failed and will be retried (timeouts, 5xx, 429, unreachable)."
    );
    metrics::describe_counter!(
        REFUSED_BY_MDM,
        Unit::Count,
        "Check-outs Workspace ONE refused after the tap (the screen said DO NOT TAKE)."
    );
    metrics::describe_gauge!(
        MDM_UP,
        "1 while Workspace ONE answers, 0 while it is unreachable."
    );
    metrics::describe_gauge!(
        MDM_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the last successful Workspace ONE call (0: none since start)."
    );
    metrics::describe_gauge!(
        PHONES,
        "Phones by state: ready, out, reserved, checking-in, set-aside, identifying, unidentified, broken."
    );
    metrics::describe_gauge!(OVERDUE, "Loans past their due time.");
    metrics::describe_counter!(
        ESCALATIONS,
        "Escalation ladder steps taken for overdue loans, by step."
    );
    metrics::describe_gauge!(
        OLDEST_WAITING,
        Unit::Seconds,
        "Unix time since which the outbox has not been empty (0 when empty)."
    );
    metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1; the label carries the badgedock version."
    );
    metrics::describe_gauge!(
        STORE_WRITABLE,
        "1 while the store takes writes; 0 while its disk is full, read-only or failing and taps are refused."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback port that was free a moment ago.
    fn free_port() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.local_addr().expect("local addr")
    }

    // The only test that installs: `metrics` has one global recorder per process, so the
    // busy-port case runs first, in the same test.
    #[tokio::test]
    async fn scrape_shows_every_metric_with_its_labels() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let busy_addr = busy.local_addr().expect("addr");
        match install(busy_addr) {
            Err(err @ MetricsError::Listen { .. }) => {
                assert!(err.to_string().contains(&busy_addr.to_string()), "{err}");
                assert!(err.to_string().contains("[metrics] listen"), "{err}");
            }
            other => panic!("expected a listen error for a busy port, got {other:?}"),
        }
        drop(busy);

        let listen = free_port();
        install(listen).expect("a failed install can be retried on another port");
        assert!(matches!(
            install(free_port()),
            Err(MetricsError::AlreadyInstalled)
        ));

        tap("checkout");
        tap("checkout");
        tap("unknown-badge");
        checkout();
        checkin();
        outbox_depth(7);
        mdm_latency(0.3, "ok");
        mdm_latency(2.5, "ok");
        mdm_latency(25.0, "timeout");
        reader_online("front", true);
        reader_online("side", false);
        error("mdm");

        let body = reqwest::get(format!("http://{listen}/metrics"))
            .await
            .expect("scrape the endpoint")
            .error_for_status()
            .expect("HTTP 200")
            .text()
            .await
            .expect("body");

        for line in [
            "badgedock_taps_total{outcome=\"checkout\"} 2",
            "badgedock_taps_total{outcome=\"unknown-badge\"} 1",
            "badgedock_checkouts_total 1",
            "badgedock_checkins_total 1",
            "badgedock_outbox_depth 7",
            "badgedock_reader_online{reader=\"front\"} 1",
            "badgedock_reader_online{reader=\"side\"} 0",
            "badgedock_errors_total{kind=\"mdm\"} 1",
            "badgedock_mdm_request_duration_seconds_bucket{result=\"ok\",le=\"0.5\"} 1",
            "badgedock_mdm_request_duration_seconds_bucket{result=\"ok\",le=\"3\"} 2",
            "badgedock_mdm_request_duration_seconds_bucket{result=\"timeout\",le=\"20\"} 0",
            "badgedock_mdm_request_duration_seconds_bucket{result=\"timeout\",le=\"30\"} 1",
            "badgedock_mdm_request_duration_seconds_count{result=\"ok\"} 2",
            "# TYPE badgedock_mdm_request_duration_seconds histogram",
            "# HELP badgedock_taps_total Badge taps, by what the station decided.",
        ] {
            assert!(
                body.lines().any(|l| l == line),
                "missing line {line:?} in scrape:\n{body}"
            );
        }
        let build_info = format!(
            "badgedock_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(
            body.lines().any(|l| l == build_info),
            "missing {build_info:?} in:\n{body}"
        );
    }
}
