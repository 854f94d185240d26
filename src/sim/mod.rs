//! The deterministic station simulator (`badgedock sim`), in the spirit of
//! FoundationDB's simulation testing and TigerBeetle's VOPR.
//!
//! One seeded, single-threaded run on virtual time drives the real engine
//! ([`crate::checkout::Engine`]), the real store (a SQLite file per station, reopened at
//! every restart; [`crate::store::BlockingStore`]), the outbox decisions of the daemon
//! ([`outbox`], one file to swap for the pure scheduler), a Workspace ONE model
//! ([`ws1`]) and a world ([`world`]): two stations on one tenant, nurses, phones and
//! slots, a network with latency and faults, kill -9 (rarely from a store that lost its
//! WAL, or an empty file), wall clocks that step. Invariants ([`invariants`]) are checked
//! after every step and at quiet points. A run is a pure function of its seed: the same
//! seed and event count replay the same transcript, line for line.
//!
//! No thread, no tokio, no wall clock: the only clock is the simulator's virtual one.
//!
//! ## What it found in the engine as of the `sim` branch point
//!
//! See `src/sim/README.md` for the table of the defect classes, the invariant
//! that catches each and the seeds; [`scenarios`] holds one hand-written regression
//! scenario per class found.

pub mod invariants;
pub mod outbox;
pub mod rng;
pub mod scenarios;
pub mod world;
pub mod ws1;

use std::collections::BTreeMap;

pub use invariants::{Invariant, ALL, ENFORCED};
use world::Sim;

/// Why a run could not go on (the simulator's own failures, not findings).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A station's store failed.
    #[error("the simulated station's store failed: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The temporary directory for the stores could not be made.
    #[error("cannot create a temporary directory for the simulated stores (set TMPDIR to a writable directory): {0}")]
    TempDir(std::io::Error),
    /// A store file could not be copied or truncated.
    #[error("cannot copy or truncate a simulated store file: {0}")]
    Io(std::io::Error),
}

/// Receives every transcript line (`--verbose`).
pub type Observer = Box<dyn FnMut(&str)>;

/// What to run.
pub struct Options {
    /// The seed.
    pub seed: u64,
    /// How many events to process (quiet points included).
    pub events: u64,
    /// Events between quiet points.
    pub quiet_every: u64,
    /// Workspace ONE faults, kills and clock steps (drawn per seed) when true.
    pub faults: bool,
    /// Invariants whose violation stops the run.
    pub enforced: Vec<Invariant>,
    /// A scripted run: no spontaneous world events, nurses act only when told to (see
    /// [`scenarios`]).
    pub script: bool,
    /// The workflows (wipe on check-in, when check-out work starts) instead of the
    /// seed's draw.
    pub workflow: Option<(bool, crate::checkout::AssignAt)>,
    /// Receives every transcript line.
    pub observer: Option<Observer>,
}

impl Options {
    /// A random run of `events` events for `seed`, enforcing [`ENFORCED`].
    pub fn random(seed: u64, events: u64) -> Options {
        Options {
            seed,
            events,
            quiet_every: 4_000,
            faults: true,
            enforced: ENFORCED.to_vec(),
            script: false,
            workflow: None,
            observer: None,
        }
    }

    /// A scripted run without faults, with the given workflows.
    pub fn script(wipe_on_checkin: bool, assign_at: crate::checkout::AssignAt) -> Options {
        Options {
            seed: 1,
            events: u64::MAX,
            quiet_every: u64::MAX,
            faults: false,
            enforced: Vec::new(),
            script: true,
            workflow: Some((wipe_on_checkin, assign_at)),
            observer: None,
        }
    }
}

/// One invariant violation.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The seed of the run.
    pub seed: u64,
    /// Which invariant.
    pub invariant: Invariant,
    /// What was wrong.
    pub detail: String,
    /// How many events had run.
    pub at_event: u64,
    /// True when the invariant is enforced (the run stopped).
    pub enforced: bool,
    /// The last transcript lines, oldest first (kept for the first violation of each
    /// invariant in a run only).
    pub transcript: Vec<String>,
}

/// What a run came to.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub events: u64,
    /// Invariant checks made.
    pub checks: u64,
    /// Virtual time covered, ms.
    pub virtual_ms: u64,
    /// The first violation of each invariant, in order found.
    pub first: Vec<Violation>,
    /// How many violations of each invariant.
    pub counts: BTreeMap<Invariant, u64>,
}

impl Report {
    /// True when an enforced invariant was violated.
    pub fn failed(&self) -> bool {
        self.first.iter().any(|v| v.enforced)
    }
}

/// Runs one seed: random world steps with a quiet point every `quiet_every` events and
/// one at the end.
pub fn run(options: Options) -> Result<Report, SimError> {
    let budget = options.events;
    let quiet_every = options.quiet_every.max(100);
    let mut sim = Sim::new(options)?;
    while !sim.stop && sim.events < budget {
        let next = (sim.events + quiet_every).min(budget);
        sim.run_until(u64::MAX, next)?;
        if sim.stop {
            break;
        }
        sim.quiet_point()?;
    }
    Ok(report(sim))
}

pub(crate) fn report(sim: Sim) -> Report {
    let mut first: Vec<Violation> = Vec::new();
    let mut counts = BTreeMap::new();
    for violation in sim.violations {
        *counts.entry(violation.invariant).or_insert(0) += 1;
        if !first.iter().any(|f| f.invariant == violation.invariant) {
            first.push(violation);
        }
    }
    Report {
        seed: sim.options.seed,
        events: sim.events,
        checks: sim.checks,
        virtual_ms: sim.now,
        first,
        counts,
    }
}
