//! The simulated world and its event loop: two stations (each the real engine, the
//! real store on a SQLite file and the outbox driver), nurses, phones, slots, the
//! Workspace ONE model and the network between them, all on one virtual clock.
//!
//! Everything that happens is an [`Ev`] in one queue ordered by (virtual time, sequence
//! number); the loop pops one at a time, so a run is a pure function of its seed. The
//! stations' wall clocks are the virtual clock plus an offset the world may step.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::PathBuf;

use crate::badges::Resolution;
use crate::checkout::{
    AdminCommand, AssignAt, CheckoutState, DeviceCommand, Effect, Engine, EngineConfig, Input,
    Instruction, MdmAction, MdmDeviceInfo, Mono, Now, Persisted, SlotState, Snapshot, SyncState,
    TapDecision, Tone, WorkflowStep,
};
use crate::domain::{BadgeNumber, DeviceKey, Platform, ReaderName, SlotLabel, Timestamp, User};
use crate::mdm::MdmError;
use crate::sim::invariants::Invariant;
use crate::sim::outbox::{OutboxDriver, Send};
use crate::sim::rng::Rng;
use crate::sim::ws1::{Applied, Ws1};
use crate::sim::{Options, SimError, Violation};
use crate::store::{BlockingStore, Durability, StoreError};

/// The stations' wall clock at virtual time 0: 2026-01-01T00:00:00Z.
pub const BASE_WALL_MS: i64 = 1_767_225_600_000;
/// Slots per station.
pub const SLOTS: usize = 6;
/// The dock's loose-cable window: a USB flap shorter than this is not reported.
pub const FLAP_WINDOW_MS: u64 = 3_000;
/// The client's request timeout (`uem.request-timeout-ms`).
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// `checkout.reservation-seconds`.
pub const RESERVATION_MS: i64 = 60_000;
/// How long a quiet point lets the world settle before the convergence checks.
/// Longer than two of the engine's reconciliation periods (10 min): a phone returned at
/// the other cabinet is brought back to the staging user there if a late assignment
/// reached it, then its loan is seen closed at the first station.
pub const QUIET_MS: u64 = 1_300_000;
/// How long a refusal must stay on the main line to be read.
pub const READABLE_MS: u64 = 5_000;
/// The staging account.
pub const STAGING: &str = "staging.multi";
/// How many transcript lines a failure report keeps.
pub const TRANSCRIPT_LINES: usize = 60;

/// A nurse's account as the directory and Workspace ONE see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NurseKind {
    /// One active account, spelled as the directory spells it.
    Regular,
    /// One active account, spelled in another case than the directory's.
    CaseDifferent,
    /// Two active accounts with this exact name.
    Ambiguous,
    /// The account is inactive in Workspace ONE.
    Inactive,
}

/// What a nurse was last told by a station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    /// The station.
    pub st: usize,
    /// The phone.
    pub device: DeviceKey,
    /// The slot.
    pub slot: SlotLabel,
    /// When (virtual ms).
    pub at: u64,
}

/// A nurse.
#[derive(Debug, Clone)]
pub struct Nurse {
    /// The username the badge directory gives.
    pub dir_name: String,
    /// What the screen calls her.
    pub display: String,
    /// Her badge number.
    pub badge: String,
    /// How Workspace ONE knows her.
    pub kind: NurseKind,
    /// The instruction she is following.
    pub told: Option<Told>,
    /// The phone she holds.
    pub holds: Option<usize>,
    /// Every slot a station told her to take recently, even if she walked away: the
    /// reservations she may be assigned a phone for.
    pub offers: Vec<Told>,
}

/// Where a phone physically is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// In a slot, USB connected.
    Docked {
        /// The station.
        st: usize,
        /// The slot index.
        slot: usize,
    },
    /// In a slot but off the USB bus (rebooting).
    Away {
        /// The station.
        st: usize,
        /// The slot index.
        slot: usize,
    },
    /// In someone's hand: a nurse, or nobody the station knows.
    Held {
        /// The nurse.
        by: Option<usize>,
        /// The station it was taken from.
        from: usize,
        /// True when she took it as a station told her, within her reservation.
        as_told: bool,
    },
    /// A personal phone at home.
    Home,
}

/// A phone.
#[derive(Debug, Clone)]
pub struct Phone {
    /// Its identity.
    pub key: DeviceKey,
    /// True for the fleet (staged by the staging account); false for personal phones.
    pub ours: bool,
    /// Where it is.
    pub loc: Loc,
    /// Bumped when it leaves the bus, to match its return.
    pub gen: u64,
    /// The last time it was taken out of each station's cabinet: when (virtual ms) and by
    /// which nurse (None: someone without a tap), by station.
    pub taken: BTreeMap<usize, (u64, Option<usize>)>,
    /// The last time it left each station's bus for longer than the loose-cable window
    /// (taken, or a reboot): what the station sees as "taken".
    pub left: BTreeMap<usize, Vec<u64>>,
}

/// A request on its way to Workspace ONE.
#[derive(Debug, Clone)]
pub enum Req {
    /// An outbox row.
    Perform {
        /// The row.
        id: crate::checkout::ActionId,
        /// The device.
        device: DeviceKey,
        /// What.
        action: MdmAction,
        /// Attempt number.
        attempts: u32,
    },
    /// "Is the wipe pending?" for a wipe marked sent.
    WipeCheck {
        /// The row.
        id: crate::checkout::ActionId,
        /// The device.
        device: DeviceKey,
        /// Attempt number.
        attempts: u32,
    },
    /// A device lookup.
    Identify {
        /// The device.
        device: DeviceKey,
        /// The engine's request id, echoed in the answer.
        request: u64,
    },
}

/// An answer on its way back.
#[derive(Debug, Clone)]
pub enum Res {
    /// To a perform.
    Done(Result<(), MdmError>),
    /// To a wipe check.
    Wipe(Result<bool, MdmError>),
    /// To a lookup.
    Info(Result<MdmDeviceInfo, MdmError>),
}

/// Something that happens at a virtual instant.
#[derive(Debug, Clone)]
pub enum Ev {
    /// The world does something spontaneous.
    World,
    /// A nurse acts on what she was told.
    NurseAct {
        /// Who.
        nurse: usize,
    },
    /// Whoever holds the phone docks it again.
    Return {
        /// The phone.
        phone: usize,
    },
    /// A personal phone is taken home.
    PersonalLeave {
        /// The phone.
        phone: usize,
    },
    /// A rebooting phone is back on the bus.
    UsbBack {
        /// The phone.
        phone: usize,
        /// Which absence this ends.
        gen: u64,
        /// False for a flap shorter than the loose-cable window: the dock reported
        /// neither its going nor its coming back.
        reported: bool,
    },
    /// The dock reports to a station (after its loose-cable window).
    Dock {
        /// The station.
        st: usize,
        /// The station's life it was seen in.
        epoch: u64,
        /// What it reports.
        input: Input,
    },
    /// A wiped phone enrolled again.
    Reenrol {
        /// The phone.
        phone: usize,
    },
    /// A request reaches Workspace ONE.
    Arrive {
        /// From.
        st: usize,
        /// The station's life it was sent in.
        epoch: u64,
        /// What.
        req: Req,
        /// When the answer is back, if it comes back at all.
        answer_at: Option<u64>,
    },
    /// An answer (or the client's timeout) reaches a station.
    Answer {
        /// To.
        st: usize,
        /// The station's life it was sent in.
        epoch: u64,
        /// To what.
        req: Req,
        /// The answer.
        res: Res,
    },
    /// The engine's deadline.
    Tick {
        /// The station.
        st: usize,
    },
    /// The outbox worker looks at the outbox.
    Poll {
        /// The station.
        st: usize,
    },
    /// A killed station starts again.
    Restart {
        /// The station.
        st: usize,
    },
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the earliest event is the greatest.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A refusal on a station's main line and until when it must stay.
#[derive(Debug, Clone)]
pub struct Shown {
    /// The instruction.
    pub instruction: Instruction,
    /// Until when (virtual ms).
    pub until: u64,
    /// The nurse it is about, when known.
    pub nurse: Option<usize>,
}

/// One station.
pub struct Station {
    /// "A" or "B".
    pub name: String,
    /// The engine's configuration.
    pub config: EngineConfig,
    path: PathBuf,
    /// The engine, while up.
    pub engine: Option<Engine>,
    /// The store, while up.
    pub store: Option<BlockingStore>,
    driver: OutboxDriver,
    /// Bumped at every kill.
    pub epoch: u64,
    /// Wall clock minus virtual clock minus [`BASE_WALL_MS`].
    pub wall_offset: i64,
    tick_at: Option<u64>,
    poll_at: Option<u64>,
    /// Audit lines committed and acknowledged by the store since the file was created.
    pub audit_committed: u64,
    /// The refusal being read.
    pub refusal: Option<Shown>,
    /// The last snapshot taken after an input.
    pub snapshot: Option<Snapshot>,
    /// When its wall clock last stepped (virtual ms).
    pub last_step: Option<u64>,
}

/// How often Workspace ONE misbehaves, per mille of requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    /// 429 with Retry-After.
    pub rate_limited: u64,
    /// 502/503.
    pub server_error: u64,
    /// An HTML 404 page from a load balancer.
    pub html_404: u64,
    /// Applied, answer lost (client timeout).
    pub timeout_applied: u64,
    /// Never applied (client timeout).
    pub timeout_lost: u64,
    /// A PATCH refused with 400.
    pub refused_patch: u64,
    /// Seconds of latency instead of milliseconds.
    pub slow: u64,
    /// Per mille of world steps that start an outage.
    pub outage: u64,
    /// Per mille of world steps that kill a station.
    pub kill: u64,
    /// Per mille of world steps that step a wall clock.
    pub clock_step: u64,
}

/// The whole simulation.
pub struct Sim {
    /// Options of the run.
    pub options: Options,
    /// The randomness.
    pub rng: Rng,
    /// Virtual time, ms.
    pub now: u64,
    queue: BinaryHeap<Queued>,
    seq: u64,
    /// Events processed.
    pub events: u64,
    /// Invariant checks made.
    pub checks: u64,
    /// The stations.
    pub stations: Vec<Station>,
    /// The Workspace ONE tenant.
    pub ws1: Ws1,
    /// Workspace ONE answers nothing until then (virtual ms).
    pub outage_until: u64,
    /// The phones.
    pub phones: Vec<Phone>,
    /// The nurses.
    pub nurses: Vec<Nurse>,
    /// Fault rates while faults are on.
    pub faults: FaultRates,
    /// False at quiet points.
    pub faults_on: bool,
    /// True while the world holds still for a quiet point.
    pub quiet: bool,
    /// The last lines, for a failure report.
    pub transcript: VecDeque<String>,
    /// Every violation found.
    pub violations: Vec<Violation>,
    /// Set when an enforced invariant failed: the run stops.
    pub stop: bool,
    /// A scripted run: nurses act only when the script says so.
    pub script_mode: bool,
    /// Latencies (there, back) and errors a script forces on the next requests.
    pub forced: VecDeque<(u64, u64, Option<MdmError>)>,
    /// Devices Workspace ONE refused a request for (a 400, by the fault schedule): an
    /// operator's matter, with the reason on the screen, until IT retries them.
    pub refused: std::collections::BTreeSet<DeviceKey>,
    /// Devices a station had to ask "is the wipe pending?" about (the wipe's answer was
    /// lost): when Workspace ONE shows nothing pending, only IT can tell whether it
    /// happened, and the station says so.
    pub unconfirmed_wipes: std::collections::BTreeSet<DeviceKey>,
    _dir: tempfile::TempDir,
}

fn slot_label(index: usize) -> SlotLabel {
    SlotLabel::new((index + 1).to_string())
}

impl Sim {
    /// Builds the world for `options.seed`: the tenant, phones docked, nurses, two
    /// stations whose workflows are drawn from the seed. Nothing has happened yet.
    pub fn new(options: Options) -> Result<Sim, SimError> {
        let mut rng = Rng::new(options.seed);
        let dir = match std::path::Path::new("/dev/shm").is_dir() {
            true => tempfile::Builder::new()
                .prefix("badgedock-sim")
                .tempdir_in("/dev/shm")
                .or_else(|_| tempfile::tempdir()),
            false => tempfile::tempdir(),
        }
        .map_err(SimError::TempDir)?;
        let mut ws1 = Ws1::new(STAGING);
        let names = [
            ("alice.martin", "Alice Martin", NurseKind::Regular),
            ("ben.okafor", "Ben Okafor", NurseKind::Regular),
            ("chloe.dubois", "Chloe Dubois", NurseKind::Regular),
            ("Dave.Lee", "Dave Lee", NurseKind::CaseDifferent),
            ("erin.walsh", "Erin Walsh", NurseKind::Regular),
            ("farah.haddad", "Farah Haddad", NurseKind::Regular),
            ("gus.nilsen", "Gus Nilsen", NurseKind::Regular),
            ("bob.ray", "Bob Ray", NurseKind::Ambiguous),
            ("carol.old", "Carol Old", NurseKind::Inactive),
            ("hana.sato", "Hana Sato", NurseKind::Regular),
        ];
        let mut nurses = Vec::new();
        for (index, (name, display, kind)) in names.iter().enumerate() {
            match kind {
                NurseKind::Regular => ws1.add_user(name, true),
                NurseKind::CaseDifferent => ws1.add_user(&name.to_ascii_lowercase(), true),
                NurseKind::Ambiguous => {
                    ws1.add_user(name, true);
                    ws1.add_user(name, true);
                }
                NurseKind::Inactive => ws1.add_user(name, false),
            }
            nurses.push(Nurse {
                dir_name: (*name).to_string(),
                display: (*display).to_string(),
                badge: format!("0401{:04}{:02}", 1000 + index * 37, index),
                kind: *kind,
                told: None,
                holds: None,
                offers: Vec::new(),
            });
        }
        let mut phones = Vec::new();
        for index in 0..9 {
            let key = DeviceKey::apple_from_usb_serial(&format!("00008110{:016X}", 0xA000 + index));
            ws1.add_device(&key, &format!("Ward iPhone {}", index + 1), STAGING, true);
            let (st, slot) = if index < 6 {
                (0, index)
            } else {
                (1, index - 6)
            };
            phones.push(Phone {
                key,
                ours: true,
                loc: Loc::Docked { st, slot },
                gen: 0,
                taken: BTreeMap::new(),
                left: BTreeMap::new(),
            });
        }
        // Two personal phones: user-enrolled by their owners, never staged.
        for (index, owner) in [(0usize, 0usize), (1, 4)] {
            let key = DeviceKey::apple_from_usb_serial(&format!("00008120{:016X}", 0xB000 + index));
            let owner_name = nurses[owner].dir_name.clone();
            ws1.add_device(
                &key,
                &format!("{}'s iPhone", nurses[owner].display),
                &owner_name,
                false,
            );
            phones.push(Phone {
                key,
                ours: false,
                loc: Loc::Home,
                gen: 0,
                taken: BTreeMap::new(),
                left: BTreeMap::new(),
            });
        }
        // The workflows are part of the seed.
        let wipe_on_checkin = rng.chance(350);
        let assign_at = if rng.chance(300) {
            AssignAt::Undock
        } else {
            AssignAt::Tap
        };
        let (wipe_on_checkin, assign_at) = options.workflow.unwrap_or((wipe_on_checkin, assign_at));
        let intensity = if options.faults { rng.range(1, 3) } else { 0 };
        let faults = FaultRates {
            rate_limited: 8 * intensity,
            server_error: 8 * intensity,
            html_404: 2 * intensity,
            timeout_applied: 4 * intensity,
            timeout_lost: 4 * intensity,
            refused_patch: intensity,
            slow: 10 * intensity,
            outage: 3 * intensity,
            kill: 5 * intensity,
            clock_step: 2 * intensity,
        };
        let mut stations = Vec::new();
        for name in ["A", "B"] {
            let sync = WorkflowStep::Command {
                command: DeviceCommand::SyncDevice,
            };
            let checkin = if wipe_on_checkin {
                vec![WorkflowStep::Command {
                    command: DeviceCommand::EnterpriseWipe,
                }]
            } else {
                vec![WorkflowStep::AssignStagingUser, sync.clone()]
            };
            let config = EngineConfig {
                station: format!("station {name}"),
                slots: (0..SLOTS).map(slot_label).collect(),
                staging_user: crate::domain::Username::new(STAGING),
                max_devices_per_user: 1,
                reservation_ms: RESERVATION_MS,
                assign_at,
                overdue_ms: 12 * 3_600_000,
                failure_threshold: 3,
                checkout_steps: BTreeMap::from([
                    (
                        Platform::Apple,
                        vec![WorkflowStep::AssignUser, sync.clone()],
                    ),
                    (Platform::Android, vec![sync.clone()]),
                ]),
                checkin_steps: BTreeMap::from([
                    (Platform::Apple, checkin),
                    (Platform::Android, vec![sync]),
                ]),
                reboot_window_ms: EngineConfig::DEFAULT_REBOOT_WINDOW_MS,
                organization_groups: Vec::new(),
                lending: Default::default(),
            };
            stations.push(Station {
                name: name.to_string(),
                config,
                path: dir.path().join(format!("station-{name}.sqlite3")),
                engine: None,
                store: None,
                driver: OutboxDriver::new(4),
                epoch: 0,
                wall_offset: 0,
                tick_at: None,
                poll_at: None,
                audit_committed: 0,
                refusal: None,
                snapshot: None,
                last_step: None,
            });
        }
        let script_mode = options.script;
        let mut sim = Sim {
            options,
            rng,
            now: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            events: 0,
            checks: 0,
            stations,
            ws1,
            outage_until: 0,
            phones,
            nurses,
            faults,
            faults_on: intensity > 0,
            quiet: false,
            transcript: VecDeque::new(),
            violations: Vec::new(),
            stop: false,
            script_mode,
            forced: VecDeque::new(),
            refused: std::collections::BTreeSet::new(),
            unconfirmed_wipes: std::collections::BTreeSet::new(),
            _dir: dir,
        };
        let summary = format!(
            "seed {}: check-in {}, assign at {}, fault intensity {intensity}",
            sim.options.seed,
            if wipe_on_checkin {
                "wipes"
            } else {
                "assigns the staging user"
            },
            match assign_at {
                AssignAt::Tap => "tap",
                AssignAt::Undock => "undock",
            }
        );
        sim.line(summary);
        for st in 0..sim.stations.len() {
            sim.start_station(st, false)?;
        }
        if !sim.script_mode {
            sim.schedule(1_000, Ev::World);
        }
        Ok(sim)
    }

    // ----- the loop -----------------------------------------------------------------

    /// Puts an event `delay` ms from now.
    pub fn schedule(&mut self, delay: u64, ev: Ev) {
        self.schedule_at(self.now + delay, ev);
    }

    fn schedule_at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        });
    }

    /// Runs events up to virtual time `until` (or until the event budget or a stop).
    pub fn run_until(&mut self, until: u64, budget: u64) -> Result<(), SimError> {
        while !self.stop && self.events < budget {
            let Some(next) = self.queue.peek() else {
                self.now = self.now.max(until);
                return Ok(());
            };
            if next.at > until {
                self.now = self.now.max(until);
                return Ok(());
            }
            let Some(Queued { at, ev, .. }) = self.queue.pop() else {
                return Ok(());
            };
            self.now = self.now.max(at);
            if self.quiet {
                // The world holds still: its spontaneous events wait for the quiet point to end.
                if matches!(ev, Ev::World | Ev::Return { .. } | Ev::PersonalLeave { .. }) {
                    let later = at + QUIET_MS;
                    self.schedule_at(later, ev);
                    continue;
                }
            }
            self.process(ev)?;
        }
        Ok(())
    }

    /// Lets the world go quiet: faults stop, nobody taps or returns a phone, scheduled
    /// work runs for [`QUIET_MS`]; then the quiet-point invariants are checked.
    pub fn quiet_point(&mut self) -> Result<(), SimError> {
        let was_on = self.faults_on;
        self.faults_on = false;
        self.outage_until = self.outage_until.min(self.now);
        self.quiet = true;
        self.line(format!(
            "{} quiet point: faults off, world still",
            self.clock()
        ));
        self.operator_retries()?;
        let until = self.now + QUIET_MS;
        // Stations that are down come back; answers still on the wire arrive.
        self.run_until(self.now + QUIET_MS / 2, u64::MAX)?;
        self.operator_retries()?;
        self.run_until(until, u64::MAX)?;
        self.quiet = false;
        self.faults_on = was_on;
        if !self.stop {
            self.check_quiet()?;
        }
        Ok(())
    }

    /// IT reads the screen: every slot whose phone Workspace ONE refused a request for
    /// (shown set aside or failed, with the reason) gets an admin retry.
    fn operator_retries(&mut self) -> Result<(), SimError> {
        for st in 0..self.stations.len() {
            let Some(snapshot) = self.stations[st].snapshot.clone() else {
                continue;
            };
            for slot in &snapshot.slots {
                let Some(key) = &slot.device else { continue };
                let shown =
                    matches!(slot.state, SlotState::SetAside) || slot.sync == SyncState::Failed;
                if shown && self.refused.remove(key) {
                    let command = AdminCommand::Retry {
                        slot: slot.label.clone(),
                    };
                    self.line(format!(
                        "{} {} IT: {}",
                        self.clock(),
                        self.stations[st].name,
                        command.describe()
                    ));
                    self.input(st, Input::Admin(command), None)?;
                }
            }
        }
        Ok(())
    }

    fn process(&mut self, ev: Ev) -> Result<(), SimError> {
        self.events += 1;
        match ev {
            Ev::World => {
                self.world_step()?;
                let gap = self.rng.range(500, 6_000);
                self.schedule(gap, Ev::World);
            }
            Ev::NurseAct { nurse } => self.nurse_act(nurse)?,
            Ev::Return { phone } => self.return_phone(phone, None)?,
            Ev::PersonalLeave { phone } => {
                if let Loc::Docked { st, slot } = self.phones[phone].loc {
                    self.line(format!(
                        "{} personal phone {} taken home from {}:{}",
                        self.clock(),
                        short(&self.phones[phone].key),
                        self.stations[st].name,
                        slot + 1
                    ));
                    self.phones[phone].loc = Loc::Home;
                    self.dock_report(
                        st,
                        Input::Undocked {
                            slot: slot_label(slot),
                            device: self.phones[phone].key.clone(),
                        },
                    );
                }
            }
            Ev::UsbBack {
                phone,
                gen,
                reported,
            } => {
                if let Loc::Away { st, slot } = self.phones[phone].loc {
                    if self.phones[phone].gen == gen {
                        self.phones[phone].loc = Loc::Docked { st, slot };
                        self.line(format!(
                            "{} {} back on USB in {}:{}",
                            self.clock(),
                            short(&self.phones[phone].key),
                            self.stations[st].name,
                            slot + 1
                        ));
                        if reported {
                            self.dock_report(
                                st,
                                Input::Docked {
                                    slot: slot_label(slot),
                                    device: self.phones[phone].key.clone(),
                                },
                            );
                        }
                    }
                }
            }
            Ev::Dock { st, epoch, input } => {
                if self.stations[st].epoch == epoch && self.stations[st].engine.is_some() {
                    self.line(format!(
                        "{} {} dock: {}",
                        self.clock(),
                        self.stations[st].name,
                        describe_input(&input)
                    ));
                    self.input(st, input, None)?;
                }
            }
            Ev::Reenrol { phone } => {
                let key = self.phones[phone].key.clone();
                self.line(format!(
                    "{} WS1: {} re-enrolled to the staging user",
                    self.clock(),
                    short(&key)
                ));
                self.ws1.reenrol(&key);
            }
            Ev::Arrive {
                st,
                epoch,
                req,
                answer_at,
            } => self.arrive(st, epoch, req, answer_at)?,
            Ev::Answer {
                st,
                epoch,
                req,
                res,
            } => self.answer(st, epoch, req, res)?,
            Ev::Tick { st } => {
                if self.stations[st].tick_at == Some(self.now) && self.stations[st].engine.is_some()
                {
                    self.stations[st].tick_at = None;
                    self.input(st, Input::Tick, None)?;
                } else {
                    self.events -= 1;
                }
            }
            Ev::Poll { st } => {
                if self.stations[st].poll_at == Some(self.now) && self.stations[st].engine.is_some()
                {
                    self.stations[st].poll_at = None;
                    self.poll(st)?;
                } else {
                    self.events -= 1;
                }
            }
            Ev::Restart { st } => self.start_station(st, true)?,
        }
        Ok(())
    }

    // ----- stations -----------------------------------------------------------------

    /// The station's wall clock now.
    pub fn wall(&self, st: usize) -> Timestamp {
        Timestamp(BASE_WALL_MS + self.now as i64 + self.stations[st].wall_offset)
    }

    /// The clock column of a transcript line.
    pub fn clock(&self) -> String {
        format!("{:>8}.{:03}", self.now / 1000, self.now % 1000)
    }

    /// Appends a transcript line.
    pub fn line(&mut self, text: String) {
        if let Some(observer) = self.options.observer.as_mut() {
            observer(&text);
        }
        if self.transcript.len() >= TRANSCRIPT_LINES {
            self.transcript.pop_front();
        }
        self.transcript.push_back(text);
    }

    /// Opens a station's store as the daemon does: the continuity mark beside it must
    /// agree. A store that lost its WAL (behind its mark) or came back empty (another
    /// store) is refused, as the daemon refuses it; IT then puts back the intact files
    /// (the simulator kept them at the kill) and the station starts from those. A store
    /// the mark accepts must hold every audit line committed (checked by the caller).
    fn open_store(&mut self, st: usize) -> Result<BlockingStore, SimError> {
        let path = self.stations[st].path.clone();
        let mark = path.with_extension("mark");
        let intact = path.with_extension("intact");
        let mut store = BlockingStore::open(&path, Durability::ProcessCrashOnly)?;
        match store.adopt_mark(mark.clone(), false) {
            Ok(()) => {}
            Err(refused @ (StoreError::Rewound { .. } | StoreError::Replaced { .. })) => {
                drop(store);
                // The error names the (random) temporary path: the transcript says which
                // refusal it was instead, so that a seed replays line for line.
                let why = match &refused {
                    StoreError::Rewound {
                        found, expected, ..
                    } => format!(
                        "it is behind its continuity mark ({found} of {expected} transitions: WAL lost)"
                    ),
                    _ => "it is not the store its continuity mark names (emptied or replaced)"
                        .to_string(),
                };
                self.line(format!(
                    "{} {} refuses its store: {why}",
                    self.clock(),
                    self.stations[st].name
                ));
                if !intact.exists() {
                    return Err(SimError::Store(refused));
                }
                for suffix in ["sqlite3-wal", "sqlite3-shm"] {
                    let _ = std::fs::remove_file(path.with_extension(suffix));
                }
                std::fs::rename(&intact, &path).map_err(SimError::Io)?;
                self.line(format!(
                    "{} {}: IT puts back the store's intact files",
                    self.clock(),
                    self.stations[st].name
                ));
                store = BlockingStore::open(&path, Durability::ProcessCrashOnly)?;
                store.adopt_mark(mark, false)?;
            }
            Err(other) => return Err(SimError::Store(other)),
        }
        let _ = std::fs::remove_file(&intact);
        Ok(store)
    }

    /// Starts (or restarts) a station from its store, then reports what is docked.
    pub fn start_station(&mut self, st: usize, restart: bool) -> Result<(), SimError> {
        let mut store = self.open_store(st)?;
        let persisted: Persisted = store.load()?;
        let audit_len = store.audit_len()?;
        let committed = self.stations[st].audit_committed;
        if audit_len != committed {
            self.violation(
                Invariant::NothingLost,
                format!(
                    "station {} restarted with {audit_len} audit lines but {committed} were committed",
                    self.stations[st].name
                ),
            );
            self.stations[st].audit_committed = audit_len;
        }
        let now = Now {
            wall: self.wall(st),
            mono: Mono(self.now as i64),
        };
        let config = self.stations[st].config.clone();
        let (engine, effects) = Engine::restore(config, persisted, now);
        {
            let station = &mut self.stations[st];
            station.engine = Some(engine);
            station.store = Some(store);
            station.driver = OutboxDriver::new(4);
            station.tick_at = None;
            station.poll_at = None;
            station.refusal = None;
        }
        self.line(format!(
            "{} {} {}",
            self.clock(),
            self.stations[st].name,
            if restart {
                "restarts from its store"
            } else {
                "starts"
            }
        ));
        self.effects(st, effects, None)?;
        let present: Vec<(SlotLabel, DeviceKey)> = self
            .phones
            .iter()
            .filter_map(|p| match p.loc {
                Loc::Docked { st: s, slot } if s == st => Some((slot_label(slot), p.key.clone())),
                _ => None,
            })
            .collect();
        self.input(st, Input::Inventory { present }, None)?;
        self.schedule_poll(st, self.now);
        Ok(())
    }

    /// kill -9: the engine, the worker and the connection vanish; requests already on
    /// the wire still arrive, answers are lost. `lost_wal` restarts from a copy of the
    /// .sqlite3 file alone; `empty` from an empty file.
    pub fn kill(&mut self, st: usize, lost_wal: bool, empty: bool) -> Result<(), SimError> {
        if self.stations[st].engine.is_none() {
            return Ok(());
        }
        let path = self.stations[st].path.clone();
        let copy = path.with_extension("copy");
        if lost_wal {
            std::fs::copy(&path, &copy).map_err(SimError::Io)?;
        }
        let station = &mut self.stations[st];
        station.engine = None;
        // Dropping the connection stands in for the process dying (SQLite's page cache
        // was already handed to the OS: synchronous=OFF survives a killed process).
        station.store = None;
        station.epoch += 1;
        station.tick_at = None;
        station.poll_at = None;
        station.snapshot = None;
        if lost_wal || empty {
            // Closing the connection checkpointed the WAL: the file is whole. Kept aside,
            // it is the copy IT puts back when the daemon refuses the damaged one.
            std::fs::copy(&path, path.with_extension("intact")).map_err(SimError::Io)?;
            for suffix in ["sqlite3-wal", "sqlite3-shm"] {
                let _ = std::fs::remove_file(path.with_extension(suffix));
            }
            if empty {
                std::fs::write(&path, b"").map_err(SimError::Io)?;
            } else {
                std::fs::rename(&copy, &path).map_err(SimError::Io)?;
            }
        }
        let how = if empty {
            " (the store comes back as an empty file)"
        } else if lost_wal {
            " (the store comes back without its WAL)"
        } else {
            ""
        };
        self.line(format!(
            "{} {} kill -9{how}",
            self.clock(),
            self.stations[st].name
        ));
        Ok(())
    }

    /// Hands one input to a station's engine and performs its effects; `actor` is the
    /// nurse whose tap this is.
    pub fn input(
        &mut self,
        st: usize,
        input: Input,
        actor: Option<usize>,
    ) -> Result<Option<TapDecision>, SimError> {
        let now = Now {
            wall: self.wall(st),
            mono: Mono(self.now as i64),
        };
        let Some(engine) = self.stations[st].engine.as_mut() else {
            return Ok(None);
        };
        let effects = engine.handle(now, input);
        let decision = self.effects(st, effects, actor)?;
        self.after_input(st, actor);
        Ok(decision)
    }

    fn effects(
        &mut self,
        st: usize,
        effects: Vec<Effect>,
        actor: Option<usize>,
    ) -> Result<Option<TapDecision>, SimError> {
        let now = self.wall(st);
        let mut decision = None;
        let mut offered = Vec::new();
        for effect in effects {
            match effect {
                Effect::Commit(commit) => {
                    if let Some(store) = self.stations[st].store.as_mut() {
                        store.commit(&commit)?;
                    }
                    self.stations[st].audit_committed += commit.audit.len() as u64;
                    offered.extend(
                        commit
                            .checkouts
                            .iter()
                            .filter(|c| c.state == CheckoutState::Reserved && c.reserved_at == now)
                            .map(|c| c.device.clone()),
                    );
                }
                Effect::Identify { device, request } => {
                    self.send(st, Req::Identify { device, request })
                }
                Effect::WakeOutbox => self.schedule_poll(st, self.now),
                Effect::Decision(d) => decision = Some(d),
                Effect::Feedback { .. } => {}
            }
        }
        for device in offered {
            self.check_available_means_confirmed(st, &device, actor);
        }
        Ok(decision)
    }

    fn after_input(&mut self, st: usize, actor: Option<usize>) {
        let Some(engine) = self.stations[st].engine.as_ref() else {
            return;
        };
        let deadline = engine.next_deadline();
        let snapshot = engine.snapshot();
        if let Some(deadline) = deadline {
            // A deadline due now is handled by this very input; time moves on by at least
            // a millisecond before the next tick, as it does for the daemon.
            let at = (deadline.0.max(0) as u64).max(self.now + 1);
            if self.stations[st].tick_at.is_none_or(|t| t != at) {
                self.stations[st].tick_at = Some(at);
                self.schedule_at(at, Ev::Tick { st });
            }
        }
        self.check_screen(st, &snapshot, actor);
        self.stations[st].snapshot = Some(snapshot);
    }

    fn schedule_poll(&mut self, st: usize, at: u64) {
        if self.stations[st].poll_at.is_some_and(|p| p <= at) {
            return;
        }
        self.stations[st].poll_at = Some(at);
        self.schedule_at(at, Ev::Poll { st });
    }

    fn poll(&mut self, st: usize) -> Result<(), SimError> {
        let now = self.wall(st);
        let station = &mut self.stations[st];
        let Some(store) = station.store.as_mut() else {
            return Ok(());
        };
        let mono = Mono(self.now as i64);
        let sends = station.driver.poll(store, now, mono)?;
        let wake = station.driver.next_wake(mono);
        for send in sends {
            let req = match send {
                Send::Perform {
                    id,
                    device,
                    action,
                    attempts,
                } => Req::Perform {
                    id,
                    device,
                    action,
                    attempts,
                },
                Send::WipeCheck {
                    id,
                    device,
                    attempts,
                } => {
                    self.unconfirmed_wipes.insert(device.clone());
                    Req::WipeCheck {
                        id,
                        device,
                        attempts,
                    }
                }
            };
            self.check_never_the_wrong_phone(st, &req);
            self.send(st, req);
        }
        self.schedule_poll(st, wake.0 as u64);
        Ok(())
    }

    // ----- the network and Workspace ONE ------------------------------------------

    fn latency(&mut self) -> u64 {
        if self.faults_on && self.rng.chance(self.faults.slow) {
            self.rng.range(1_000, 15_000)
        } else {
            self.rng.range(15, 400)
        }
    }

    /// Sends a request: it reaches Workspace ONE after one delay and its answer comes
    /// back after another, unless a fault decides otherwise.
    pub fn send(&mut self, st: usize, req: Req) {
        let epoch = self.stations[st].epoch;
        let there = self.latency();
        let back = self.latency();
        self.line(format!(
            "{} {} -> WS1 {}",
            self.clock(),
            self.stations[st].name,
            describe_req(&req)
        ));
        let (there, back) = match self.forced.pop_front() {
            Some((there, back, Some(error))) => {
                let res = error_res(&req, error);
                self.schedule(
                    there + back,
                    Ev::Answer {
                        st,
                        epoch,
                        req,
                        res,
                    },
                );
                return;
            }
            Some((there, back, None)) => (there, back),
            None => (there, back),
        };
        if self.faults_on {
            let f = self.faults;
            let is_patch = matches!(
                &req,
                Req::Perform {
                    action: MdmAction::AssignUser { .. } | MdmAction::AssignStagingUser,
                    ..
                }
            );
            let roll = self.rng.weighted(&[
                f.rate_limited,
                f.server_error,
                f.html_404,
                f.timeout_applied,
                f.timeout_lost,
                if is_patch { f.refused_patch } else { 0 },
                1000u64.saturating_sub(
                    f.rate_limited
                        + f.server_error
                        + f.html_404
                        + f.timeout_applied
                        + f.timeout_lost
                        + f.refused_patch,
                ),
            ]);
            let operation = describe_req(&req);
            let forced = match roll {
                0 => Some(MdmError::RateLimited {
                    operation,
                    retry_after: Some(std::time::Duration::from_secs(self.rng.range(1, 30))),
                }),
                1 => Some(MdmError::ServerError {
                    operation,
                    status: if self.rng.chance(500) { 502 } else { 503 },
                    error_code: None,
                    message: "Service Unavailable".into(),
                }),
                2 => Some(MdmError::ServerError {
                    // As `UemClient` reads an HTML page on a 4xx: not Workspace ONE's
                    // answer, so transient.
                    operation,
                    status: 404,
                    error_code: None,
                    message: "an HTML page: 404 Not Found (load balancer)".into(),
                }),
                3 => {
                    self.schedule(
                        there,
                        Ev::Arrive {
                            st,
                            epoch,
                            req: req.clone(),
                            answer_at: None,
                        },
                    );
                    let res = timeout_res(&req);
                    self.schedule(
                        REQUEST_TIMEOUT_MS,
                        Ev::Answer {
                            st,
                            epoch,
                            req,
                            res,
                        },
                    );
                    return;
                }
                4 => {
                    let res = timeout_res(&req);
                    self.schedule(
                        REQUEST_TIMEOUT_MS,
                        Ev::Answer {
                            st,
                            epoch,
                            req,
                            res,
                        },
                    );
                    return;
                }
                5 => Some(MdmError::Rejected {
                    operation,
                    status: 400,
                    error_code: Some(400),
                    message: "Invalid request".into(),
                }),
                _ => None,
            };
            if let Some(error) = forced {
                if let (Req::Perform { device, .. }, MdmError::Rejected { .. }) = (&req, &error) {
                    self.refused.insert(device.clone());
                }
                let res = error_res(&req, error);
                self.schedule(
                    there + back,
                    Ev::Answer {
                        st,
                        epoch,
                        req,
                        res,
                    },
                );
                return;
            }
        }
        if there + back > REQUEST_TIMEOUT_MS {
            if there < REQUEST_TIMEOUT_MS {
                self.schedule(
                    there,
                    Ev::Arrive {
                        st,
                        epoch,
                        req: req.clone(),
                        answer_at: None,
                    },
                );
            }
            let res = timeout_res(&req);
            self.schedule(
                REQUEST_TIMEOUT_MS,
                Ev::Answer {
                    st,
                    epoch,
                    req,
                    res,
                },
            );
        } else {
            let answer_at = self.now + there + back;
            self.schedule(
                there,
                Ev::Arrive {
                    st,
                    epoch,
                    req,
                    answer_at: Some(answer_at),
                },
            );
        }
    }

    fn arrive(
        &mut self,
        st: usize,
        epoch: u64,
        req: Req,
        answer_at: Option<u64>,
    ) -> Result<(), SimError> {
        let res = if self.now < self.outage_until {
            let error = MdmError::Unreachable {
                operation: describe_req(&req),
                detail: "connection refused (outage)".into(),
            };
            error_res(&req, error)
        } else {
            match &req {
                Req::Perform { device, action, .. } => {
                    if matches!(action, MdmAction::Command { command } if !command.is_idempotent())
                    {
                        self.check_wipe(st, device);
                    }
                    let result = self.ws1.perform(device, action);
                    let applied = result.as_ref().ok().copied();
                    self.line(format!(
                        "{} WS1 <- {} {}: {}",
                        self.clock(),
                        self.stations[st].name,
                        describe_req(&req),
                        match &result {
                            Ok(_) => "applied".to_string(),
                            Err(e) => format!("refused ({})", short_error(e)),
                        }
                    ));
                    if applied == Some(Applied::Wiped) {
                        self.wiped(device);
                    }
                    Res::Done(result.map(|_| ()))
                }
                Req::WipeCheck { device, .. } => Res::Wipe(self.ws1.wipe_pending(device)),
                Req::Identify { device, .. } => Res::Info(self.ws1.lookup_device(device)),
            }
        };
        if let Some(at) = answer_at {
            self.schedule_at(
                at,
                Ev::Answer {
                    st,
                    epoch,
                    req,
                    res,
                },
            );
        }
        Ok(())
    }

    /// A wipe took: the phone reboots (off the bus for a while) and enrols again later.
    fn wiped(&mut self, device: &DeviceKey) {
        let Some(phone) = self.phones.iter().position(|p| p.key == *device) else {
            return;
        };
        if let Loc::Docked { st, slot } = self.phones[phone].loc {
            let away = self.rng.range(20_000, 90_000);
            self.reboot(phone, st, slot, away);
        }
        let later = self.rng.range(60_000, 150_000);
        self.schedule(later, Ev::Reenrol { phone });
    }

    fn answer(&mut self, st: usize, epoch: u64, req: Req, res: Res) -> Result<(), SimError> {
        if self.stations[st].epoch != epoch || self.stations[st].engine.is_none() {
            return Ok(());
        }
        let now = self.wall(st);
        self.line(format!(
            "{} {} <- WS1 {}: {}",
            self.clock(),
            self.stations[st].name,
            describe_req(&req),
            describe_res(&res)
        ));
        self.check_user_match(&req, &res);
        let inputs = match (req, res) {
            (Req::Identify { device, request }, Res::Info(result)) => {
                // As the daemon's engine loop does: any answer that is not a transient
                // failure shows Workspace ONE reachable, and the outbox stops backing off.
                if result.as_ref().is_ok() || result.as_ref().is_err_and(|e| !e.is_transient()) {
                    self.stations[st].driver.answered(Mono(self.now as i64));
                    self.schedule_poll(st, self.now);
                }
                vec![Input::DeviceIdentified {
                    device,
                    request,
                    result: result.map_err(|e| e.to_string()),
                }]
            }
            (Req::Perform { id, .. }, Res::Done(result)) => {
                let station = &mut self.stations[st];
                match station.store.as_mut() {
                    Some(store) => station.driver.settle_perform(
                        store,
                        now,
                        Mono(self.now as i64),
                        id,
                        result,
                    )?,
                    None => Vec::new(),
                }
            }
            (Req::WipeCheck { id, .. }, Res::Wipe(result)) => {
                let station = &mut self.stations[st];
                match station.store.as_mut() {
                    Some(store) => station.driver.settle_wipe_check(
                        store,
                        now,
                        Mono(self.now as i64),
                        id,
                        result,
                    )?,
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        let outbox = inputs
            .iter()
            .any(|i| matches!(i, Input::ActionSettled { .. }));
        for input in inputs {
            self.input(st, input, None)?;
        }
        if outbox {
            self.schedule_poll(st, self.now);
        }
        Ok(())
    }

    // ----- the world ---------------------------------------------------------------

    fn dock_report(&mut self, st: usize, input: Input) {
        let epoch = self.stations[st].epoch;
        self.schedule(FLAP_WINDOW_MS, Ev::Dock { st, epoch, input });
    }

    /// A docked phone leaves the bus for `away` ms (a reboot, or a flap when shorter
    /// than the loose-cable window) and comes back to the same slot.
    pub fn reboot(&mut self, phone: usize, st: usize, slot: usize, away: u64) {
        self.phones[phone].gen += 1;
        let gen = self.phones[phone].gen;
        self.phones[phone].loc = Loc::Away { st, slot };
        self.line(format!(
            "{} {} off USB for {} s in {}:{}",
            self.clock(),
            short(&self.phones[phone].key),
            away / 1000,
            self.stations[st].name,
            slot + 1
        ));
        if away >= FLAP_WINDOW_MS {
            self.phones[phone]
                .left
                .entry(st)
                .or_default()
                .push(self.now);
            self.dock_report(
                st,
                Input::Undocked {
                    slot: slot_label(slot),
                    device: self.phones[phone].key.clone(),
                },
            );
        }
        self.schedule(
            away,
            Ev::UsbBack {
                phone,
                gen,
                reported: away >= FLAP_WINDOW_MS,
            },
        );
    }

    /// The empty slots of a station (no phone docked or rebooting in them).
    pub fn empty_slots(&self, st: usize) -> Vec<usize> {
        (0..SLOTS)
            .filter(|slot| {
                !self.phones.iter().any(|p| matches!(p.loc, Loc::Docked { st: s, slot: n } | Loc::Away { st: s, slot: n } if s == st && n == *slot))
            })
            .collect()
    }

    /// The phones docked (on the bus) at a station.
    pub fn docked(&self, st: usize) -> Vec<usize> {
        (0..self.phones.len())
            .filter(|p| matches!(self.phones[*p].loc, Loc::Docked { st: s, .. } if s == st))
            .collect()
    }

    fn world_step(&mut self) -> Result<(), SimError> {
        let f = self.faults;
        let on = self.faults_on;
        let weights = [
            40,                                // 0 tap
            4,                                 // 1 re-tap
            6,                                 // 2 reboot or flap
            3,                                 // 3 move
            2,                                 // 4 personal phone docked
            2,                                 // 5 taken without a tap
            2,                                 // 6 admin retry
            2,                                 // 7 admin cancel
            if on { f.kill } else { 0 },       // 8 kill -9
            if on { f.outage } else { 0 },     // 9 outage
            if on { f.clock_step } else { 0 }, // 10 clock step
            3,                                 // 11 unknown badge
        ];
        match self.rng.weighted(&weights) {
            0 => {
                let nurse = self.rng.below(self.nurses.len());
                // A nurse waiting for a phone taps again where she was told, not elsewhere.
                let st = match &self.nurses[nurse].told {
                    Some(told) if self.now <= told.at + RESERVATION_MS as u64 => told.st,
                    _ if self.rng.chance(700) => 0,
                    _ => 1,
                };
                self.tap(st, Some(nurse))?;
            }
            1 => {
                let told: Vec<usize> = (0..self.nurses.len())
                    .filter(|n| self.nurses[*n].told.is_some())
                    .collect();
                if let Some(nurse) = self.rng.pick(&told) {
                    if let Some(st) = self.nurses[nurse].told.as_ref().map(|t| t.st) {
                        self.tap(st, Some(nurse))?;
                    }
                }
            }
            2 => {
                let docked: Vec<usize> = (0..self.phones.len())
                    .filter(|p| matches!(self.phones[*p].loc, Loc::Docked { .. }))
                    .collect();
                if let Some(phone) = self.rng.pick(&docked) {
                    if let Loc::Docked { st, slot } = self.phones[phone].loc {
                        let away = if self.rng.chance(400) {
                            self.rng.range(200, FLAP_WINDOW_MS - 1)
                        } else {
                            self.rng.range(3_000, 90_000)
                        };
                        self.reboot(phone, st, slot, away);
                    }
                }
            }
            3 => {
                let st = self.rng.below(2);
                let docked = self.docked(st);
                let empty = self.empty_slots(st);
                if let (Some(phone), Some(to)) = (self.rng.pick(&docked), self.rng.pick(&empty)) {
                    if let Loc::Docked { slot: from, .. } = self.phones[phone].loc {
                        self.phones[phone].loc = Loc::Docked { st, slot: to };
                        self.line(format!(
                            "{} {} moved {}:{} -> {}:{}",
                            self.clock(),
                            short(&self.phones[phone].key),
                            self.stations[st].name,
                            from + 1,
                            self.stations[st].name,
                            to + 1
                        ));
                        self.dock_report(
                            st,
                            Input::Moved {
                                from: slot_label(from),
                                to: slot_label(to),
                                device: self.phones[phone].key.clone(),
                            },
                        );
                    }
                }
            }
            4 => {
                let home: Vec<usize> = (0..self.phones.len())
                    .filter(|p| self.phones[*p].loc == Loc::Home)
                    .collect();
                let st = self.rng.below(2);
                let empty = self.empty_slots(st);
                if let (Some(phone), Some(slot)) = (self.rng.pick(&home), self.rng.pick(&empty)) {
                    self.phones[phone].loc = Loc::Docked { st, slot };
                    self.line(format!(
                        "{} personal phone {} docked in {}:{}",
                        self.clock(),
                        short(&self.phones[phone].key),
                        self.stations[st].name,
                        slot + 1
                    ));
                    self.dock_report(
                        st,
                        Input::Docked {
                            slot: slot_label(slot),
                            device: self.phones[phone].key.clone(),
                        },
                    );
                    let stay = self.rng.range(20_000, 300_000);
                    self.schedule(stay, Ev::PersonalLeave { phone });
                }
            }
            5 => {
                let st = self.rng.below(2);
                let docked: Vec<usize> = self
                    .docked(st)
                    .into_iter()
                    .filter(|p| self.phones[*p].ours)
                    .collect();
                if let Some(phone) = self.rng.pick(&docked) {
                    self.take(phone, None)?;
                }
            }
            6 | 7 => {
                let st = self.rng.below(2);
                let slot = self.rng.below(SLOTS);
                let command = if let Some(command) = self.loan_command(st) {
                    command
                } else if self.rng.chance(500) {
                    AdminCommand::Retry {
                        slot: slot_label(slot),
                    }
                } else {
                    AdminCommand::CancelReservation {
                        slot: slot_label(slot),
                    }
                };
                if self.stations[st].engine.is_some() {
                    // Only a slot the station shows reserved has a reservation to cancel.
                    let cancels = match &command {
                        AdminCommand::CancelReservation { slot } => {
                            self.stations[st].snapshot.as_ref().is_some_and(|s| {
                                s.slots
                                    .iter()
                                    .any(|v| v.label == *slot && v.state == SlotState::Reserved)
                            })
                        }
                        _ => false,
                    };
                    if let (AdminCommand::CancelReservation { slot }, true) = (&command, cancels) {
                        // The screen tells the nurse her reservation is cancelled.
                        let now = self.now;
                        let open = |t: &Told| {
                            t.st == st && t.slot == *slot && now <= t.at + RESERVATION_MS as u64
                        };
                        for nurse in &mut self.nurses {
                            if nurse.told.as_ref().is_some_and(open) {
                                nurse.told = None;
                            }
                            nurse.offers.retain(|t| !open(t));
                        }
                    }
                    self.line(format!(
                        "{} {} admin: {}",
                        self.clock(),
                        self.stations[st].name,
                        command.describe()
                    ));
                    self.input(st, Input::Admin(command), None)?;
                }
            }
            8 => {
                let st = self.rng.below(2);
                let lost_wal = self.rng.chance(40);
                let empty = !lost_wal && self.rng.chance(10);
                if self.stations[st].engine.is_some() {
                    self.kill(st, lost_wal, empty)?;
                    let down = self.rng.range(1_000, 20_000);
                    self.schedule(down, Ev::Restart { st });
                }
            }
            9 => {
                let length = self.rng.range(10_000, 300_000);
                self.outage_until = self.outage_until.max(self.now + length);
                self.line(format!(
                    "{} WS1 outage for {} s",
                    self.clock(),
                    length / 1000
                ));
            }
            10 => {
                let st = self.rng.below(2);
                let step = self
                    .rng
                    .pick(&[-3_600_000i64, -600_000, 600_000, 3_600_000])
                    .unwrap_or(0);
                if self.stations[st].engine.is_none() {
                    // Steps while the daemon runs: the engine sees them (monotonic clock
                    // against wall clock). A clock that moves while the daemon is down
                    // is indistinguishable from time passing; across a restart the
                    // station measures reservations on its wall clock (a known limit,
                    // see src/sim/README.md).
                    return Ok(());
                }
                self.stations[st].wall_offset += step;
                self.stations[st].last_step = Some(self.now);
                self.line(format!(
                    "{} {} wall clock steps {:+} s",
                    self.clock(),
                    self.stations[st].name,
                    step / 1000
                ));
            }
            _ => {
                let st = self.rng.below(2);
                self.tap(st, None)?;
            }
        }
        Ok(())
    }

    /// A badge tap at a station: a nurse's, or an unknown badge (`None`).
    pub fn tap(&mut self, st: usize, nurse: Option<usize>) -> Result<(), SimError> {
        if self.stations[st].engine.is_none() {
            return Ok(());
        }
        let (badge, resolution, who) = match nurse {
            Some(n) => {
                let nurse = &self.nurses[n];
                (
                    nurse.badge.clone(),
                    Resolution::Known {
                        user: User {
                            username: crate::domain::Username::new(nurse.dir_name.clone()),
                            display_name: nurse.display.clone(),
                            groups: Vec::new(),
                            enroller: false,
                        },
                    },
                    nurse.display.clone(),
                )
            }
            None => (
                "99990000".to_string(),
                Resolution::Unknown,
                "an unknown badge".to_string(),
            ),
        };
        self.line(format!(
            "{} {} tap: {who}",
            self.clock(),
            self.stations[st].name
        ));
        let input = Input::Tap {
            reader: ReaderName::new("reader"),
            badge: BadgeNumber::new(badge),
            resolution,
        };
        let decision = self.input(st, input, nurse)?;
        if let (Some(n), Some(decision)) = (nurse, decision) {
            match decision {
                TapDecision::TakeSlot { slot, device, .. } => {
                    self.line(format!(
                        "{} {} tells {who}: take slot {slot} ({})",
                        self.clock(),
                        self.stations[st].name,
                        short(&device)
                    ));
                    let told = Told {
                        st,
                        device,
                        slot,
                        at: self.now,
                    };
                    let now = self.now;
                    let offers = &mut self.nurses[n].offers;
                    offers.retain(|o| now <= o.at + 10 * RESERVATION_MS as u64);
                    offers.push(told.clone());
                    self.nurses[n].told = Some(told);
                    if self.script_mode {
                        return Ok(());
                    }
                    let delay = if self.rng.chance(60) {
                        self.rng.range(40_000, 90_000)
                    } else {
                        self.rng.range(2_000, 25_000)
                    };
                    self.schedule(delay, Ev::NurseAct { nurse: n });
                }
                TapDecision::Refused { reason } => {
                    self.line(format!(
                        "{} {} refuses {who}: {reason}",
                        self.clock(),
                        self.stations[st].name
                    ));
                }
                TapDecision::EnrollmentApproved { .. } | TapDecision::MarkedBroken { .. } => {}
            }
        }
        Ok(())
    }

    fn nurse_act(&mut self, n: usize) -> Result<(), SimError> {
        let Some(told) = self.nurses[n].told.clone() else {
            return Ok(());
        };
        if self.nurses[n].holds.is_some() {
            self.nurses[n].told = None;
            return Ok(());
        }
        // She reads the main line first.
        let upper = self.nurses[n].display.to_uppercase();
        let warned = self.stations[told.st].snapshot.as_ref().is_some_and(|s| {
            s.instruction.headline.contains(&upper)
                && s.instruction.headline.contains("DO NOT TAKE")
        });
        if warned {
            self.line(format!(
                "{} {} reads DO NOT TAKE and leaves",
                self.clock(),
                self.nurses[n].display
            ));
            self.nurses[n].told = None;
            return Ok(());
        }
        if self.now.saturating_sub(told.at) > 3 * RESERVATION_MS as u64 {
            self.nurses[n].told = None;
            return Ok(());
        }
        match self.rng.weighted(&[78, 8, 14]) {
            0 => {
                let phone = self.phones.iter().position(|p| p.key == told.device);
                if let Some(phone) = phone {
                    if matches!(self.phones[phone].loc, Loc::Docked { st, .. } if st == told.st) {
                        self.take(phone, Some(n))?;
                        return Ok(());
                    }
                }
                self.line(format!(
                    "{} {} finds no phone to take",
                    self.clock(),
                    self.nurses[n].display
                ));
                self.nurses[n].told = None;
            }
            1 => {
                let others: Vec<usize> = self
                    .docked(told.st)
                    .into_iter()
                    .filter(|p| self.phones[*p].ours && self.phones[*p].key != told.device)
                    .collect();
                match self.rng.pick(&others) {
                    Some(phone) => self.take(phone, Some(n))?,
                    None => self.nurses[n].told = None,
                }
            }
            _ => {
                self.line(format!(
                    "{} {} walks away without a phone",
                    self.clock(),
                    self.nurses[n].display
                ));
                self.nurses[n].told = None;
            }
        }
        Ok(())
    }

    /// Sometimes the charge nurse acts on a loan of station `st`: closes one whose phone
    /// she can see docked at the other cabinet, or marks lost one nobody with a badge
    /// holds.
    fn loan_command(&mut self, st: usize) -> Option<AdminCommand> {
        if !self.rng.chance(300) {
            return None;
        }
        let loans = self.stations[st].snapshot.as_ref()?.loans.clone();
        if loans.is_empty() {
            return None;
        }
        let loan = &loans[self.rng.below(loans.len())];
        let phone = self.phones.iter().find(|p| p.key == loan.device)?;
        let device = Some(loan.device.to_string());
        let user = Some(loan.username.clone());
        match phone.loc {
            Loc::Docked { st: s, .. } if s != st => Some(AdminCommand::CloseLoan { user, device }),
            Loc::Held { by: None, .. } => Some(AdminCommand::MarkLost { user, device }),
            _ => None,
        }
    }

    /// Someone takes a docked phone out of its slot.
    pub fn take(&mut self, phone: usize, by: Option<usize>) -> Result<(), SimError> {
        let Loc::Docked { st, slot } = self.phones[phone].loc else {
            return Ok(());
        };
        let key = self.phones[phone].key.clone();
        // As told: within her reservation, and the phone has not left the bus since she
        // was told (to the station, that was her taking it; its return, a check-in).
        // A take while the daemon is down is judged at its restart on the wall clock: if
        // that clock stepped since she was told, the station cannot know whether her
        // reservation still held (a known limit; see src/sim/README.md).
        let left = self.phones[phone]
            .left
            .get(&st)
            .and_then(|times| times.last().copied());
        let down = self.stations[st].engine.is_none();
        let stepped = self.stations[st].last_step;
        let as_told = by.is_some_and(|n| {
            self.nurses[n].told.as_ref().is_some_and(|t| {
                t.device == key
                    && self.now <= t.at + RESERVATION_MS as u64
                    && left.is_none_or(|at| at < t.at)
                    && !(down && stepped.is_some_and(|at| at >= t.at))
            })
        });
        let who = by
            .map(|n| self.nurses[n].display.clone())
            .unwrap_or_else(|| "someone without a tap".into());
        self.line(format!(
            "{} {who} takes {} from {}:{}{}",
            self.clock(),
            short(&key),
            self.stations[st].name,
            slot + 1,
            if as_told { " as told" } else { "" }
        ));
        self.phones[phone].loc = Loc::Held {
            by,
            from: st,
            as_told,
        };
        self.phones[phone].taken.insert(st, (self.now, by));
        self.phones[phone]
            .left
            .entry(st)
            .or_default()
            .push(self.now);
        if let Some(n) = by {
            self.nurses[n].holds = Some(phone);
            self.nurses[n].told = None;
        }
        self.dock_report(
            st,
            Input::Undocked {
                slot: slot_label(slot),
                device: key,
            },
        );
        let keep = self.rng.range(60_000, 1_800_000);
        self.schedule(keep, Ev::Return { phone });
        Ok(())
    }

    /// Whoever holds `phone` docks it: at `at` (station, slot) or where the world picks.
    pub fn return_phone(
        &mut self,
        phone: usize,
        at: Option<(usize, usize)>,
    ) -> Result<(), SimError> {
        let Loc::Held { by, from, .. } = self.phones[phone].loc else {
            return Ok(());
        };
        let (st, slot) = match at {
            Some(place) => place,
            None => {
                let st = if self.rng.chance(200) { 1 - from } else { from };
                let empty = self.empty_slots(st);
                match self.rng.pick(&empty) {
                    Some(slot) => (st, slot),
                    None => {
                        self.schedule(60_000, Ev::Return { phone });
                        return Ok(());
                    }
                }
            }
        };
        if let Some(n) = by {
            self.nurses[n].holds = None;
        }
        self.phones[phone].loc = Loc::Docked { st, slot };
        let key = self.phones[phone].key.clone();
        self.line(format!(
            "{} {} docked in {}:{}",
            self.clock(),
            short(&key),
            self.stations[st].name,
            slot + 1
        ));
        self.dock_report(
            st,
            Input::Docked {
                slot: slot_label(slot),
                device: key,
            },
        );
        Ok(())
    }

    /// Records a violation; an enforced invariant stops the run.
    pub fn violation(&mut self, invariant: Invariant, detail: String) {
        self.line(format!(
            "{} VIOLATION {}: {detail}",
            self.clock(),
            invariant.name()
        ));
        let enforced = self.options.enforced.contains(&invariant);
        let first = !self.violations.iter().any(|v| v.invariant == invariant);
        self.violations.push(Violation {
            seed: self.options.seed,
            invariant,
            detail,
            at_event: self.events,
            enforced,
            transcript: if first {
                self.transcript.iter().cloned().collect()
            } else {
                Vec::new()
            },
        });
        if enforced {
            self.stop = true;
        }
    }

    /// A slot's view on the last snapshot of a station.
    pub fn slot_state(&self, st: usize, slot: usize) -> Option<SlotState> {
        self.stations[st]
            .snapshot
            .as_ref()
            .and_then(|s| s.slots.get(slot))
            .map(|v| v.state.clone())
    }

    /// Whether a refusal is on the main line.
    pub fn is_refusal(instruction: &Instruction) -> bool {
        instruction.tone == Tone::Error
    }
}

fn timeout_res(req: &Req) -> Res {
    error_res(
        req,
        MdmError::Timeout {
            operation: describe_req(req),
        },
    )
}

fn error_res(req: &Req, error: MdmError) -> Res {
    match req {
        Req::Perform { .. } => Res::Done(Err(error)),
        Req::WipeCheck { .. } => Res::Wipe(Err(error)),
        Req::Identify { .. } => Res::Info(Err(error)),
    }
}

/// The last six characters of a device id, for transcripts.
pub fn short(key: &DeviceKey) -> String {
    let tail: String = key
        .id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("phone…{tail}")
}

fn short_error(error: &MdmError) -> String {
    let text = error.to_string();
    text.chars().take(90).collect()
}

fn describe_req(req: &Req) -> String {
    match req {
        Req::Perform {
            id,
            device,
            action,
            attempts,
        } => format!(
            "#{} {} {} (try {attempts})",
            id.0,
            crate::checkout::describe_action(action),
            short(device)
        ),
        Req::WipeCheck { id, device, .. } => {
            format!("#{} is a wipe pending on {}?", id.0, short(device))
        }
        Req::Identify { device, .. } => format!("look up {}", short(device)),
    }
}

fn describe_res(res: &Res) -> String {
    match res {
        Res::Done(Ok(())) | Res::Wipe(Ok(true)) => "ok".into(),
        Res::Wipe(Ok(false)) => "no wipe pending".into(),
        Res::Info(Ok(info)) => format!(
            "user {}{}",
            info.enrollment_user
                .as_ref()
                .map(|u| u.as_str())
                .unwrap_or("-"),
            if info.wipe_pending {
                ", wipe pending"
            } else {
                ""
            }
        ),
        Res::Done(Err(e)) | Res::Wipe(Err(e)) | Res::Info(Err(e)) => short_error(e),
    }
}

fn describe_input(input: &Input) -> String {
    match input {
        Input::Docked { slot, device } => format!("{} docked in slot {slot}", short(device)),
        Input::Undocked { slot, device } => format!("{} left slot {slot}", short(device)),
        Input::Moved { from, to, device } => {
            format!("{} moved from slot {from} to {to}", short(device))
        }
        other => format!("{other:?}").chars().take(80).collect(),
    }
}
