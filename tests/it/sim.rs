//! The deterministic station simulator: a fixed set of seeds holds the enforced
//! invariants, a seed replays identically, and each defect class of issue 12 has a
//! regression scenario that shows the defect until its fix lands (then runs clean).

use badgedock::sim::{self, scenarios, Invariant, Options};

/// Seeds the CI runs, and events per seed: about 40 s in debug on a 2-core machine.
/// Seed 5 is left out: it shows the one known open race (a check-out assignment delayed
/// by an outage lands after the phone was checked in at the other cabinet; see
/// `sim::invariants::ENFORCED`); `badgedock sim --seed 5 --events 5000` replays it.
const CI_SEEDS: [u64; 8] = [1, 2, 3, 4, 6, 7, 8, 9];
const CI_EVENTS: u64 = 5_000;

#[test]
fn ci_seeds_hold_the_enforced_invariants() {
    let mut events = 0;
    let mut checks = 0;
    for seed in CI_SEEDS {
        let report = sim::run(Options::random(seed, CI_EVENTS)).expect("the simulator runs");
        events += report.events;
        checks += report.checks;
        let enforced: Vec<String> = report
            .first
            .iter()
            .filter(|v| v.enforced)
            .map(|v| {
                format!(
                    "seed {seed}: {} — {}\n{}\nreplay: badgedock sim --seed {seed} --events {} --verbose",
                    v.invariant.name(),
                    v.detail,
                    v.transcript.join("\n"),
                    v.at_event
                )
            })
            .collect();
        assert!(enforced.is_empty(), "{}", enforced.join("\n\n"));
    }
    assert!(
        events >= CI_EVENTS * 4,
        "the seeds ran only {events} events"
    );
    assert!(checks > 1_000, "only {checks} invariant checks were made");
}

#[test]
fn a_seed_replays_line_for_line() {
    let lines = |seed| {
        let collected = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let sink = std::rc::Rc::clone(&collected);
        let mut options = Options::random(seed, 3_000);
        options.observer = Some(Box::new(move |line: &str| {
            sink.borrow_mut().push(line.to_string())
        }));
        let report = sim::run(options).expect("the simulator runs");
        let lines = collected.borrow().clone();
        (lines, report.events, report.counts)
    };
    let first = lines(11);
    assert!(first.0.len() > 100, "a run writes its transcript");
    assert_eq!(first, lines(11));
    assert_ne!(first.0, lines(12).0, "another seed, another run");
}

fn regression(name: &str) {
    let scenario = scenarios::ALL
        .iter()
        .find(|s| s.name == name)
        .expect("the scenario exists");
    let report = (scenario.play)().expect("the scenario runs");
    let found: Vec<Invariant> = report.counts.keys().copied().collect();
    if scenarios::FIXED.contains(&scenario.class) {
        let details: Vec<String> = report
            .first
            .iter()
            .map(|v| {
                format!(
                    "{}: {}\n{}",
                    v.invariant.name(),
                    v.detail,
                    v.transcript.join("\n")
                )
            })
            .collect();
        assert!(
            details.is_empty(),
            "class {} is fixed but {name} fails:\n{}",
            scenario.class,
            details.join("\n\n")
        );
    } else {
        assert!(
            found.contains(&scenario.catches),
            "{name} no longer shows class {}'s defect ({} not violated; found {found:?}): if the fix landed, add {} to sim::scenarios::FIXED",
            scenario.class,
            scenario.catches.name(),
            scenario.class
        );
    }
}

macro_rules! regressions {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                regression(stringify!($name));
            }
        )*
    };
}

regressions!(
    class01_personal_phone_wiped,
    class02_reboot_after_wipe_wipes_again,
    class03_reboot_steals_the_reservation,
    class04_returned_at_the_other_cabinet,
    class05_cancelled_in_flight,
    class06_retry_requeues_an_ended_loan,
    class07_refusal_overwritten,
    class07_debug_text_on_screen,
    class08_username_case,
    class09_retap_keeps_the_old_deadline,
    class10_clock_step_forward_moves_a_reservation,
    class12_backoff_not_reset_after_outage,
    class12_html_404_fails_for_good,
    class13_store_without_its_wal,
    class13_empty_store,
);

#[test]
fn every_scenario_has_a_test() {
    let names: Vec<&str> = scenarios::ALL.iter().map(|s| s.name).collect();
    let source = include_str!("sim.rs");
    for name in names {
        assert!(
            source.contains(&format!("    {name},")),
            "{name} has no regression test"
        );
    }
}
