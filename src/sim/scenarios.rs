//! Hand-written regression scenarios, one per defect class of issue 12 the simulator
//! found, written in the simulator's own vocabulary (tap, take, return, reboot, kill,
//! latency, clock step) on the same world: station A holds phones 0–5 in slots 1–6,
//! station B phones 6–8 in slots 1–3; phones 9 and 10 are Alice's and Erin's personal
//! iPhones. Nurses: 0 Alice, 1 Ben, 2 Chloe, 3 Dave (directory "Dave.Lee", Workspace
//! ONE "dave.lee"), 4 Erin, 5 Farah, 6 Gus, 7 Bob (two Workspace ONE accounts), 8 Carol
//! (inactive), 9 Hana.
//!
//! Each scenario returns the run's [`Report`] and names the invariant that catches the
//! defect ([`Scenario::catches`]). [`FIXED`] lists the classes the engine fixes; the
//! regression tests (`tests/it/sim.rs`) assert "caught" for the others, so they show
//! the defect today, and "no violation at all" for the fixed ones.

use crate::checkout::{AdminCommand, AssignAt, Input};
use crate::domain::SlotLabel;
use crate::mdm::MdmError;
use crate::sim::world::{Sim, REQUEST_TIMEOUT_MS};
use crate::sim::{report, Invariant, Options, Report, SimError};

/// The defect classes whose engine fix has landed: their scenarios must run clean.
/// The lead adds a class here when its fix merges.
pub const FIXED: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13];

const A: usize = 0;
const B: usize = 1;
const ALICE: usize = 0;
const BEN: usize = 1;
const DAVE: usize = 3;
const ERIN: usize = 4;
const FARAH: usize = 5;
const BOB: usize = 7;
const ERINS_IPHONE: usize = 10;

/// One regression scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The defect class of issue 12.
    pub class: u8,
    /// Its name.
    pub name: &'static str,
    /// The invariant that catches it.
    pub catches: Invariant,
    /// Plays it.
    pub play: fn() -> Result<Report, SimError>,
}

/// Every scenario.
pub const ALL: &[Scenario] = &[
    Scenario {
        class: 1,
        name: "class01_personal_phone_wiped",
        catches: Invariant::WipeOnlyOurs,
        play: class01_personal_phone_wiped,
    },
    Scenario {
        class: 2,
        name: "class02_reboot_after_wipe_wipes_again",
        catches: Invariant::OneWipePerCheckIn,
        play: class02_reboot_after_wipe_wipes_again,
    },
    Scenario {
        class: 3,
        name: "class03_reboot_steals_the_reservation",
        catches: Invariant::NeverTheWrongPhone,
        play: class03_reboot_steals_the_reservation,
    },
    Scenario {
        class: 4,
        name: "class04_returned_at_the_other_cabinet",
        catches: Invariant::LoansMatchTheWorld,
        play: class04_returned_at_the_other_cabinet,
    },
    Scenario {
        class: 5,
        name: "class05_cancelled_in_flight",
        catches: Invariant::Agreement,
        play: class05_cancelled_in_flight,
    },
    Scenario {
        class: 6,
        name: "class06_retry_requeues_an_ended_loan",
        catches: Invariant::NeverTheWrongPhone,
        play: class06_retry_requeues_an_ended_loan,
    },
    Scenario {
        class: 7,
        name: "class07_refusal_overwritten",
        catches: Invariant::RefusalStaysReadable,
        play: class07_refusal_overwritten,
    },
    Scenario {
        class: 7,
        name: "class07_debug_text_on_screen",
        catches: Invariant::NoDebugTextOnScreen,
        play: class07_debug_text_on_screen,
    },
    Scenario {
        class: 8,
        name: "class08_username_case",
        catches: Invariant::UserMatchIgnoresCase,
        play: class08_username_case,
    },
    Scenario {
        class: 9,
        name: "class09_retap_keeps_the_old_deadline",
        catches: Invariant::HeldPhoneIsHers,
        play: class09_retap_keeps_the_old_deadline,
    },
    Scenario {
        class: 10,
        name: "class10_clock_step_forward_moves_a_reservation",
        catches: Invariant::NeverTheWrongPhone,
        play: class10_clock_step_forward_moves_a_reservation,
    },
    Scenario {
        class: 12,
        name: "class12_backoff_not_reset_after_outage",
        catches: Invariant::ConvergesAfterFaults,
        play: class12_backoff_not_reset_after_outage,
    },
    Scenario {
        class: 12,
        name: "class12_html_404_fails_for_good",
        catches: Invariant::Agreement,
        play: class12_html_404_fails_for_good,
    },
    Scenario {
        class: 13,
        name: "class13_store_without_its_wal",
        catches: Invariant::NothingLost,
        play: class13_store_without_its_wal,
    },
    Scenario {
        class: 13,
        name: "class13_empty_store",
        catches: Invariant::NothingLost,
        play: class13_empty_store,
    },
];

fn slot(n: usize) -> SlotLabel {
    SlotLabel::new(n.to_string())
}

impl Sim {
    /// Lets `ms` of virtual time pass.
    pub fn advance(&mut self, ms: u64) -> Result<(), SimError> {
        let until = self.now + ms;
        self.run_until(until, u64::MAX)
    }

    /// The phone a station last told `nurse` to take, taken now.
    pub fn take_as_told(&mut self, nurse: usize) -> Result<(), SimError> {
        let told = self.nurses[nurse].told.clone();
        let phone = told.and_then(|t| self.phones.iter().position(|p| p.key == t.device));
        match phone {
            Some(phone) => self.take(phone, Some(nurse)),
            None => Ok(()),
        }
    }
}

fn start(wipe: bool, assign_at: AssignAt) -> Result<Sim, SimError> {
    let mut sim = Sim::new(Options::script(wipe, assign_at))?;
    sim.advance(5_000)?;
    Ok(sim)
}

fn finish(mut sim: Sim) -> Result<Report, SimError> {
    sim.quiet_point()?;
    Ok(report(sim))
}

/// Class 1: Erin docks her personal iPhone (user-enrolled, never staged) at a station
/// whose check-in wipes: the station wipes it.
pub fn class01_personal_phone_wiped() -> Result<Report, SimError> {
    let mut sim = start(true, AssignAt::Tap)?;
    sim.phones[ERINS_IPHONE].loc = crate::sim::world::Loc::Held {
        by: Some(ERIN),
        from: B,
        as_told: false,
    };
    sim.return_phone(ERINS_IPHONE, Some((B, 4)))?;
    sim.advance(30_000)?;
    finish(sim)
}

/// Class 2: a wipe on check-in is accepted; the phone reboots (USB gone longer than the
/// flap window) and docks again: a second wipe is sent while the first is pending.
pub fn class02_reboot_after_wipe_wipes_again() -> Result<Report, SimError> {
    let mut sim = start(true, AssignAt::Tap)?;
    sim.tap(B, Some(BEN))?;
    sim.advance(2_000)?;
    sim.take_as_told(BEN)?;
    sim.advance(60_000)?;
    sim.return_phone(6, Some((B, 4)))?;
    sim.advance(120_000)?;
    finish(sim)
}

/// Class 3: Alice is told slot 1; the phone in slot 4 reboots meanwhile and takes over
/// her reservation: she is assigned a phone she never touched.
pub fn class03_reboot_steals_the_reservation() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.tap(A, Some(ALICE))?;
    sim.advance(1_000)?;
    sim.reboot(3, A, 3, 40_000);
    sim.advance(8_000)?;
    sim.take_as_told(ALICE)?;
    sim.advance(60_000)?;
    finish(sim)
}

/// Class 4: Ben takes a phone at station A and returns it at station B: A keeps the
/// loan open for good and refuses him.
pub fn class04_returned_at_the_other_cabinet() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.tap(A, Some(BEN))?;
    sim.advance(2_000)?;
    sim.take_as_told(BEN)?;
    sim.advance(120_000)?;
    sim.return_phone(0, Some((B, 4)))?;
    sim.advance(30_000)?;
    sim.tap(A, Some(BEN))?;
    sim.advance(5_000)?;
    finish(sim)
}

/// Class 5: on a slow network, Alice's assignment is still in flight when her
/// reservation is cancelled; the undo overtakes it and the phone sits in the cabinet
/// "available" while Workspace ONE has it assigned to her.
pub fn class05_cancelled_in_flight() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.forced.push_back((6_000, 200, None));
    sim.tap(A, Some(ALICE))?;
    sim.advance(1_000)?;
    sim.input(
        A,
        Input::Admin(AdminCommand::CancelReservation { slot: slot(1) }),
        None,
    )?;
    sim.advance(30_000)?;
    finish(sim)
}

/// Class 6: Ben's assignment is refused after he took the phone; he returns it; an
/// operator presses retry and the check-out of the ended loan is sent again.
pub fn class06_retry_requeues_an_ended_loan() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    let refused = MdmError::Rejected {
        operation: "assign".into(),
        status: 400,
        error_code: Some(400),
        message: "Invalid request".into(),
    };
    sim.forced.push_back((6_000, 100, Some(refused)));
    sim.tap(A, Some(BEN))?;
    sim.advance(500)?;
    sim.take_as_told(BEN)?;
    sim.advance(60_000)?;
    sim.return_phone(0, Some((A, 0)))?;
    sim.advance(30_000)?;
    sim.input(A, Input::Admin(AdminCommand::Retry { slot: slot(1) }), None)?;
    sim.advance(30_000)?;
    finish(sim)
}

/// Class 7: an unknown badge is refused; a second later another nurse taps and the
/// refusal is gone from the main line before anyone could read it.
pub fn class07_refusal_overwritten() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.tap(A, None)?;
    sim.advance(1_000)?;
    sim.tap(A, Some(ALICE))?;
    sim.advance(10_000)?;
    finish(sim)
}

/// Class 7: Bob has two Workspace ONE accounts; the screen shows the refusal with Rust
/// debug formatting (`Username("bob.ray")`).
pub fn class07_debug_text_on_screen() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.tap(A, Some(BOB))?;
    sim.advance(10_000)?;
    finish(sim)
}

/// Class 8: the directory says "Dave.Lee", Workspace ONE "dave.lee": refused as unknown.
pub fn class08_username_case() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.tap(A, Some(DAVE))?;
    sim.advance(10_000)?;
    finish(sim)
}

/// Class 9: Erin taps again 50 s into her reservation and is shown the same slot with
/// the old deadline; it lapses, Farah is given the phone, Erin takes it.
pub fn class09_retap_keeps_the_old_deadline() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.tap(A, Some(ERIN))?;
    sim.advance(50_000)?;
    sim.tap(A, Some(ERIN))?;
    sim.advance(12_000)?;
    sim.tap(A, Some(FARAH))?;
    sim.advance(5_000)?;
    sim.take_as_told(ERIN)?;
    sim.advance(30_000)?;
    finish(sim)
}

/// Class 10: the wall clock steps ten minutes forward while Alice walks to her slot:
/// her reservation expires at once, Ben's follows the phone she takes.
pub fn class10_clock_step_forward_moves_a_reservation() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.tap(A, Some(ALICE))?;
    sim.advance(2_000)?;
    sim.stations[A].wall_offset += 600_000;
    sim.tap(A, Some(BEN))?;
    sim.advance(1_000)?;
    sim.take_as_told(ALICE)?;
    sim.advance(30_000)?;
    finish(sim)
}

/// Class 12: a ten-minute outage while Alice's assignment is queued; once Workspace ONE
/// is back, the row still waits out a backoff of minutes.
pub fn class12_backoff_not_reset_after_outage() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.outage_until = sim.now + 600_000;
    sim.tap(A, Some(ALICE))?;
    sim.advance(2_000)?;
    sim.take_as_told(ALICE)?;
    sim.advance(600_000)?;
    finish(sim)
}

/// Class 12: a load balancer answers Alice's assignment with an HTML 404 page: the
/// check-out fails for good and she keeps a phone enrolled to the staging user.
pub fn class12_html_404_fails_for_good() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    // As `UemClient` reads an HTML page on a 4xx (not Workspace ONE's answer).
    let html = MdmError::ServerError {
        operation: "assign".into(),
        status: 404,
        error_code: None,
        message: "an HTML page: 404 Not Found (load balancer)".into(),
    };
    sim.forced
        .push_back((REQUEST_TIMEOUT_MS / 2, 100, Some(html)));
    sim.tap(A, Some(ALICE))?;
    sim.advance(500)?;
    sim.take_as_told(ALICE)?;
    sim.advance(30_000)?;
    finish(sim)
}

/// Class 13: station A is killed and comes back from a copy of its .sqlite3 file
/// without the WAL: Alice's loan and the audit are gone, and A starts as if new.
pub fn class13_store_without_its_wal() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.tap(A, Some(ALICE))?;
    sim.advance(2_000)?;
    sim.take_as_told(ALICE)?;
    sim.advance(10_000)?;
    sim.kill(A, true, false)?;
    sim.advance(2_000)?;
    sim.start_station(A, true)?;
    sim.advance(10_000)?;
    finish(sim)
}

/// Class 13: station A is killed and its store comes back as an empty file.
pub fn class13_empty_store() -> Result<Report, SimError> {
    let mut sim = start(false, AssignAt::Tap)?;
    sim.tap(A, Some(ALICE))?;
    sim.advance(2_000)?;
    sim.take_as_told(ALICE)?;
    sim.advance(10_000)?;
    sim.kill(A, false, true)?;
    sim.advance(2_000)?;
    sim.start_station(A, true)?;
    sim.advance(10_000)?;
    finish(sim)
}
