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
//! - `mdm_latency_seconds{result}` histogram: one Workspace ONE API call, by result.
//! - `reader_online{reader}` gauge: 1 while a configured reader is present, else 0.
//! - `errors_total{kind}` counter: errors by kind.
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
const MDM_LATENCY: &str = "badgedock_mdm_latency_seconds";
const READER_ONLINE: &str = "badgedock_reader_online";
const ERRORS: &str = "badgedock_errors_total";
const BUILD_INFO: &str = "badgedock_build_info";

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
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
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
    metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1; the label carries the badgedock version."
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
            "badgedock_mdm_latency_seconds_bucket{result=\"ok\",le=\"0.5\"} 1",
            "badgedock_mdm_latency_seconds_bucket{result=\"ok\",le=\"3\"} 2",
            "badgedock_mdm_latency_seconds_bucket{result=\"timeout\",le=\"20\"} 0",
            "badgedock_mdm_latency_seconds_bucket{result=\"timeout\",le=\"30\"} 1",
            "badgedock_mdm_latency_seconds_count{result=\"ok\"} 2",
            "# TYPE badgedock_mdm_latency_seconds histogram",
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
