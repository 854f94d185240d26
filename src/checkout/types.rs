//! The engine's vocabulary: inputs, effects, durable records and the published snapshot.
//!
//! Everything here is plain data. Records derive serde because the store keeps them as
//! JSON and the control socket sends the snapshot as JSON; neither needs more than that.

use serde::{Deserialize, Serialize};

use crate::badges::Resolution;
use crate::domain::{BadgeNumber, DeviceKey, Platform, ReaderName, SlotLabel, Timestamp, Username};

/// Identifies one check-out (a reservation that may become a loan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckoutId(pub u64);

/// Identifies one row of the MDM outbox; also the idempotency key of that action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub u64);

/// Everything that can happen to a station. The engine sees nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "input")]
pub enum Input {
    /// A badge was tapped and resolved by the directory and policy.
    Tap {
        /// Which reader (or `control` for an injected tap).
        reader: ReaderName,
        /// The formatted badge number.
        badge: BadgeNumber,
        /// What the directory and policy said.
        resolution: Resolution,
    },
    /// A read that yields no usable badge (random UID, garbled read, bad parity).
    BadRead {
        /// Which reader.
        reader: ReaderName,
        /// Why the read was refused, for the screen.
        reason: String,
    },
    /// A reader came online or went offline.
    ReaderStatus {
        /// Which reader.
        reader: ReaderName,
        /// True when it can read badges.
        online: bool,
        /// A short explanation when offline.
        detail: Option<String>,
    },
    /// A device appeared in a slot.
    Docked {
        /// The slot.
        slot: SlotLabel,
        /// The device.
        device: DeviceKey,
    },
    /// A device left a slot (after the dock's loose-cable window).
    Undocked {
        /// The slot.
        slot: SlotLabel,
        /// The device that was there.
        device: DeviceKey,
    },
    /// A device was moved from one slot to another within the loose-cable window.
    Moved {
        /// The slot it left.
        from: SlotLabel,
        /// The slot it is in now.
        to: SlotLabel,
        /// The device.
        device: DeviceKey,
    },
    /// The dock's first full scan after start-up: every device present, by slot. Devices
    /// the store thinks are docked but are absent left while the daemon was down.
    Inventory {
        /// What is docked now.
        present: Vec<(SlotLabel, DeviceKey)>,
    },
    /// Workspace ONE answered a device lookup the engine asked for.
    DeviceIdentified {
        /// The device asked about.
        device: DeviceKey,
        /// The request this answers ([`Effect::Identify`]'s `request`); an answer to an
        /// older request than the device's latest is stale and ignored.
        #[serde(default)]
        request: u64,
        /// What Workspace ONE knows, or why it could not say.
        result: Result<MdmDeviceInfo, String>,
    },
    /// The outbox worker finished (or gave up on) an action.
    ActionSettled {
        /// The action.
        action: ActionId,
        /// How it ended.
        outcome: ActionOutcome,
    },
    /// The outbox worker's view of Workspace ONE.
    MdmHealth {
        /// False after transient failures; true after a success.
        reachable: bool,
        /// Outbox rows not yet done.
        waiting: u32,
        /// The last error, free of secrets.
        last_error: Option<String>,
    },
    /// An operator command from the control socket (already authorised).
    Admin(AdminCommand),
    /// The daemon enrolled the badge whose enrolment a supervisor approved: the username
    /// was checked in the directory and, exactly once, in Workspace ONE, and the badge is
    /// in the station's local badge table.
    Enrolled {
        /// The badge that was unknown.
        badge: BadgeNumber,
        /// Its user now.
        user: crate::domain::User,
        /// The supervisor who approved.
        approved_by: Username,
    },
    /// The fleet's view of loans held at other stations (from the PostgreSQL fleet
    /// store, kept current by the fleet task). While `reachable` is false the per-user
    /// limit counts this station's own ledger only.
    FleetLoans {
        /// False when the fleet store could not be read lately.
        reachable: bool,
        /// Loans open at other stations.
        loans: Vec<RemoteLoan>,
    },
    /// An admin request queued at the fleet console for this station, carried out like
    /// [`Input::Admin`]; the request id goes into the same commit
    /// ([`Commit::fleet_requests`]), so the fleet task can tell it was done.
    FleetAdmin {
        /// The request's id in the fleet store.
        request: i64,
        /// Who queued it at the console.
        requested_by: String,
        /// The command.
        command: AdminCommand,
    },
    /// Nothing happened; time passed (the engine's deadline was reached).
    Tick,
}

/// A loan held at another station, as the fleet store reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLoan {
    /// The other cabinet's name, as nurses know it ("4 West").
    pub cabinet: String,
    /// Who holds the phone.
    pub username: Username,
    /// Since when (wall time, for display).
    pub since: Timestamp,
}

/// What the station knows of the fleet, for the screen and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetView {
    /// False when the fleet store is unreachable and the limit is applied locally.
    pub reachable: bool,
    /// Loans open at other stations.
    pub remote_loans: u32,
}

/// Operator commands, authorised by the daemon before they reach the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum AdminCommand {
    /// Put a set-aside device back into selection and retry its failed work.
    Retry {
        /// The slot of the device.
        slot: SlotLabel,
    },
    /// Cancel the open reservation on a slot.
    CancelReservation {
        /// The slot.
        slot: SlotLabel,
    },
    /// Close a loan without the phone coming back here (returned at another cabinet, or
    /// written off). Nothing is sent to Workspace ONE; the phone is identified when docked.
    CloseLoan {
        /// Whose loan (every loan of this user when `device` is not given).
        #[serde(default)]
        user: Option<Username>,
        /// Which phone (UDID or serial number, as `status` shows it).
        #[serde(default)]
        device: Option<String>,
    },
    /// Mark a phone on loan as lost: the loan ends, the phone is listed as lost until it
    /// is docked again (then it is checked in as found).
    MarkLost {
        /// Whose loan.
        #[serde(default)]
        user: Option<Username>,
        /// Which phone.
        #[serde(default)]
        device: Option<String>,
    },
    /// Take the phone in a slot out of the pool as broken (checked in first when it was
    /// on loan) and open a ticket.
    MarkBroken {
        /// The slot.
        slot: SlotLabel,
    },
    /// Return a broken phone to the pool.
    ClearBroken {
        /// The slot.
        slot: SlotLabel,
    },
}

impl AdminCommand {
    /// The command in words, for answers and logs.
    pub fn describe(&self) -> String {
        let target = |user: &Option<Username>, device: &Option<String>| match (user, device) {
            (Some(user), Some(device)) => format!("{user}'s phone {device}"),
            (Some(user), None) => format!("{user}'s loans"),
            (None, Some(device)) => format!("phone {device}"),
            (None, None) => "nothing".to_string(),
        };
        match self {
            AdminCommand::Retry { slot } => format!("retry of slot {slot}"),
            AdminCommand::CancelReservation { slot } => {
                format!("cancellation of the reservation on slot {slot}")
            }
            AdminCommand::CloseLoan { user, device } => {
                format!("closing of {}", target(user, device))
            }
            AdminCommand::MarkLost { user, device } => {
                format!("marking lost of {}", target(user, device))
            }
            AdminCommand::MarkBroken { slot } => format!("marking broken of slot {slot}"),
            AdminCommand::ClearBroken { slot } => format!("return to service of slot {slot}"),
        }
    }
}

/// What Workspace ONE says about a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdmDeviceInfo {
    /// `Device.Id.Value`.
    pub mdm_id: i64,
    /// `DeviceFriendlyName`, for the screen.
    pub name: String,
    /// The current enrolment user (`UserName`), if any.
    pub enrollment_user: Option<Username>,
    /// True when a wipe is pending or the device is unenrolled.
    pub wipe_pending: bool,
    /// `Ownership` as Workspace ONE reports it (`S` shared, `C`, `E`, `Undefined`).
    #[serde(default)]
    pub ownership: Option<String>,
    /// The organization group (`LocationGroupId`).
    #[serde(default)]
    pub group_id: Option<i64>,
    /// True when `EnrollmentStatus` is `Enrolled`.
    #[serde(default = "yes")]
    pub enrolled: bool,
}

fn yes() -> bool {
    true
}

impl MdmDeviceInfo {
    /// True when Workspace ONE shows a shared corporate device (`Ownership` `S`).
    pub fn is_shared(&self) -> bool {
        self.ownership
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("s") || o.eq_ignore_ascii_case("shared"))
    }
}

/// How an outbox action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum ActionOutcome {
    /// Workspace ONE accepted it.
    Done,
    /// Workspace ONE refused it for good (400/404, exact-user rule) or the worker gave
    /// up; the message names what to fix.
    Failed {
        /// Why, free of secrets.
        message: String,
        /// What kind of refusal, when the worker can tell.
        #[serde(default)]
        cause: FailCause,
    },
    /// Not done yet; the worker will try again.
    Retrying {
        /// Attempts so far.
        attempts: u32,
        /// The last error.
        message: String,
    },
}

/// Why Workspace ONE refused an action for good, as far as the worker can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailCause {
    /// Anything else (the message says what).
    #[default]
    Other,
    /// No active account has this user name.
    UnknownUser,
    /// Several active accounts have this user name.
    AmbiguousUser,
    /// Workspace ONE does not know the device.
    UnknownDevice,
}

/// One step of a check-out or check-in workflow, as named in the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "step")]
pub enum WorkflowStep {
    /// Make the checking-out user the device's enrolment user.
    AssignUser,
    /// Make the staging user the device's enrolment user again.
    AssignStagingUser,
    /// A device command.
    Command {
        /// Which one.
        command: DeviceCommand,
    },
    /// Move the device to another organization group.
    ChangeOrganizationGroup {
        /// The group's numeric id.
        group_id: i64,
    },
    /// POST a JSON event to a URL.
    Webhook {
        /// Where.
        url: String,
    },
}

/// Workspace ONE device commands badgedock sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceCommand {
    /// `SyncDevice`.
    SyncDevice,
    /// `DeviceQuery`.
    DeviceQuery,
    /// `ClearPasscode`.
    ClearPasscode,
    /// `Lock`.
    Lock,
    /// `EnterpriseWipe`: not idempotent, sent at most once.
    EnterpriseWipe,
    /// `DeviceWipe`: not idempotent, sent at most once.
    DeviceWipe,
}

impl DeviceCommand {
    /// The `command=` value of the v1 API.
    pub fn api_name(self) -> &'static str {
        match self {
            DeviceCommand::SyncDevice => "SyncDevice",
            DeviceCommand::DeviceQuery => "DeviceQuery",
            DeviceCommand::ClearPasscode => "ClearPasscode",
            DeviceCommand::Lock => "Lock",
            DeviceCommand::EnterpriseWipe => "EnterpriseWipe",
            DeviceCommand::DeviceWipe => "DeviceWipe",
        }
    }

    /// Wipes must never be sent twice: after a crash the worker first asks Workspace ONE
    /// whether the wipe is already pending.
    pub fn is_idempotent(self) -> bool {
        !matches!(
            self,
            DeviceCommand::EnterpriseWipe | DeviceCommand::DeviceWipe
        )
    }
}

/// What an outbox row asks Workspace ONE to do, fully resolved by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum MdmAction {
    /// PATCH the enrolment user to this username (exact match required).
    AssignUser {
        /// The user.
        username: Username,
    },
    /// PATCH the enrolment user back to the station's staging user.
    AssignStagingUser,
    /// A device command.
    Command {
        /// Which one.
        command: DeviceCommand,
    },
    /// Change organization group.
    ChangeOrganizationGroup {
        /// The group's numeric id.
        group_id: i64,
    },
    /// POST a JSON event.
    Webhook {
        /// Where.
        url: String,
        /// The event, as JSON text.
        body: String,
    },
    /// Send an e-mail (SMTP with STARTTLS, `[lending.smtp]`); not a Workspace ONE call.
    Email {
        /// Recipients.
        to: Vec<String>,
        /// The subject line.
        subject: String,
        /// The plain-text body.
        body: String,
    },
    /// A Workspace ONE message shown on the device (POST; `{id}` and `{uuid}` in the
    /// path are the device's).
    Message {
        /// The text.
        text: String,
        /// `lending.message-path` (unverified against a real tenant).
        path: String,
    },
    /// Turn Workspace ONE Lost Mode (iOS) on or off (PUT; `{id}` and `{uuid}` in the path
    /// are the device's).
    LostMode {
        /// True to enable, false to clear.
        enable: bool,
        /// `lending.lost-mode-on-path` or `lost-mode-off-path` (unverified).
        path: String,
        /// Shown on the lock screen.
        message: String,
        /// A number to call, shown on the lock screen.
        phone: String,
    },
}

impl MdmAction {
    /// True for work that goes elsewhere than Workspace ONE (webhooks, e-mail).
    pub fn is_notification(&self) -> bool {
        matches!(self, MdmAction::Webhook { .. } | MdmAction::Email { .. })
    }
}

/// Why an action exists, for the screen and the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionPurpose {
    /// Part of a check-out.
    CheckOut,
    /// Part of a check-in.
    CheckIn,
    /// Undoes check-out work done for a device that was not the one taken.
    Undo,
    /// A step of the escalation ladder of an overdue loan (webhook, e-mail, message,
    /// Lost Mode, lock).
    Escalation,
    /// A repair ticket for a phone returned as broken.
    Ticket,
}

impl ActionPurpose {
    /// True for a check-out, check-in or undo step: work that a device's availability
    /// waits for. Escalations and tickets never hold a phone back.
    pub fn is_workflow(self) -> bool {
        matches!(
            self,
            ActionPurpose::CheckOut | ActionPurpose::CheckIn | ActionPurpose::Undo
        )
    }
}

/// Life of an outbox row as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionState {
    /// Waiting to be sent (or being retried).
    Pending,
    /// Confirmed by Workspace ONE.
    Done,
    /// Refused for good or given up; needs an operator.
    Failed,
    /// No longer wanted (superseded before it was sent).
    Cancelled,
}

/// One outbox row, as committed by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The row's id and idempotency key.
    pub id: ActionId,
    /// The device it acts on.
    pub device: DeviceKey,
    /// The check-out it belongs to.
    pub checkout: Option<CheckoutId>,
    /// Why it exists.
    pub purpose: ActionPurpose,
    /// What to do.
    pub action: MdmAction,
    /// Where it stands.
    pub state: ActionState,
    /// When the engine created it.
    pub created_at: Timestamp,
    /// The last message from the worker (error text or "done").
    pub note: Option<String>,
}

/// Where a device stands, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum DeviceStatus {
    /// Docked; waiting for Workspace ONE to say what it is.
    Identifying,
    /// Docked, known, free to check out.
    Available,
    /// Docked and reserved for a user who has not taken it yet.
    Reserved {
        /// The reservation.
        checkout: CheckoutId,
    },
    /// Out of the cabinet with a user.
    CheckedOut {
        /// The loan.
        checkout: CheckoutId,
    },
    /// Docked again; check-in work not confirmed yet. Stays so while the phone restarts
    /// (after a wipe, or a loose cable): docking it again sends nothing new.
    CheckingIn {
        /// The loan being closed (None for a device checked out elsewhere).
        checkout: Option<CheckoutId>,
        /// A wipe is part of this check-in: done only once Workspace ONE shows the device
        /// enrolled to the staging user again.
        #[serde(default)]
        reenrol: bool,
    },
    /// Out of the cabinet without a check-out (taken without a tap, or unknown state).
    Missing,
    /// An available phone left the cabinet while a reservation was open; it may be
    /// restarting. Settled after the reboot window: back in its slot (nothing happened),
    /// or taken (the one open reservation follows it; otherwise flagged missing).
    Leaving {
        /// The slot it left.
        slot: SlotLabel,
        /// When it left.
        since: Timestamp,
        /// The one reservation open when it left, which may follow it.
        candidate: Option<CheckoutId>,
    },
    /// Docked but not one of the station's phones (a personal phone, another group's):
    /// shown as foreign and never sent anything.
    Foreign,
    /// Not here and not on loan from here (returned at another cabinet, loan closed by an
    /// operator, or an unidentified phone that left): identified again when docked.
    Away,
    /// Marked lost by an operator; checked in as found when docked.
    Lost,
}

/// A device the station knows, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Its identity.
    pub key: DeviceKey,
    /// The slot it is docked in, if docked.
    pub slot: Option<SlotLabel>,
    /// Where it stands.
    pub status: DeviceStatus,
    /// What Workspace ONE said about it, once asked.
    pub mdm: Option<MdmDeviceInfo>,
    /// When it was last docked (longest on charge is chosen first).
    pub docked_since: Option<Timestamp>,
    /// Consecutive failed MDM actions since its last clean check-in.
    pub failures: u32,
    /// Set aside from selection after repeated failures, until a clean check-in.
    pub set_aside: bool,
    /// Confirmed one of the station's phones: handed out by this station, or shown by
    /// Workspace ONE as staged by the staging user or a shared device of the station's
    /// groups. Only such a phone gets check-in actions.
    #[serde(default)]
    pub ours: bool,
    /// Out of the pool as broken (returned so by a nurse or marked by the charge nurse)
    /// until an operator clears it.
    #[serde(default)]
    pub broken: bool,
    /// Workspace ONE Lost Mode was asked for: cleared first when the phone is docked.
    #[serde(default)]
    pub lost_mode: bool,
}

/// State of a check-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckoutState {
    /// Reserved; the user has not taken the device yet.
    Reserved,
    /// The user has the device.
    Out,
    /// The device came back.
    Returned,
    /// The reservation expired before the device was taken.
    Expired,
    /// An operator cancelled the reservation.
    Cancelled,
    /// The loan ended without the phone coming back here: returned at another cabinet
    /// (Workspace ONE shows it with someone else) or closed by an operator.
    Closed,
    /// An operator marked the phone lost.
    Lost,
}

/// One check-out, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRecord {
    /// Its id.
    pub id: CheckoutId,
    /// Who.
    pub username: Username,
    /// What the screen calls them.
    pub display_name: String,
    /// Which device (moves when the user takes another one than reserved).
    pub device: DeviceKey,
    /// The slot it was reserved in.
    pub slot: SlotLabel,
    /// Where it stands.
    pub state: CheckoutState,
    /// When the badge was tapped.
    pub reserved_at: Timestamp,
    /// When the reservation lapses if the device stays docked.
    pub expires_at: Timestamp,
    /// When the device left the cabinet.
    pub taken_at: Option<Timestamp>,
    /// When it came back (or the reservation ended).
    pub closed_at: Option<Timestamp>,
    /// When the loan is due back (wall clock), computed at check-out by the lending
    /// policy; None for loans from before due times.
    #[serde(default)]
    pub due_at: Option<Timestamp>,
    /// Escalation ladder steps already taken (indexes into `[[lending.escalation]]`):
    /// each is taken once per loan, across restarts.
    #[serde(default)]
    pub escalated: Vec<u32>,
}

/// What an audit line records. Stored as its kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditKind {
    /// A tap that was answered with the reservation already open.
    Tap,
    /// A phone was reserved for a user.
    CheckoutReserved,
    /// The reserved phone left the cabinet: the loan starts.
    Checkout,
    /// The one open reservation followed the phone actually taken.
    ReservationMoved,
    /// A reservation lapsed.
    Expired,
    /// A reservation was cancelled (operator, or Workspace ONE refused the assignment).
    ReservationCancelled,
    /// A second tap renewed an open reservation.
    ReservationRenewed,
    /// A tap was refused.
    TapRefused,
    /// A read yielded no usable badge.
    BadRead,
    /// A supervisor approved enrolling an unknown badge.
    EnrollmentApproved,
    /// A badge was enrolled.
    Enrolled,
    /// A phone never seen before was docked.
    Docked,
    /// A phone moved between slots.
    Moved,
    /// A phone that had just left came back (restart or reseated); nothing changed.
    DockedAgain,
    /// A phone was docked and its check-in started.
    Checkin,
    /// A shared phone enrolled to someone else (checked out elsewhere) was docked and checked in.
    CheckinForeign,
    /// Workspace ONE confirmed a check-in: the phone is available.
    CheckinDone,
    /// Workspace ONE shows an erased phone enrolled to the staging user again.
    WipeConfirmed,
    /// What a check-out ran instead of the enrolment-user change (Android).
    CheckoutWorkflow,
    /// A phone that is not the station's was docked and left alone.
    ForeignDevice,
    /// A phone was taken out of selection.
    SetAside,
    /// Workspace ONE refused an action for good.
    ActionFailed,
    /// A phone left the cabinet without a check-out.
    UnexpectedRemoval,
    /// A loan ended without the phone coming back here.
    LoanClosed,
    /// A phone was marked lost.
    Lost,
    /// A phone marked lost was docked again.
    Found,
    /// Workspace ONE disagrees with the ledger about a phone.
    Drift,
    /// An operator retried failed work.
    AdminRetry,
    /// The wall clock stepped.
    ClockStep,
    /// A loan passed its due time (the first escalation step).
    Overdue,
    /// An escalation step of an overdue loan was taken (webhook, e-mail, message, Lost
    /// Mode, lock).
    Escalated,
    /// A tap during a curfew was refused.
    CurfewRefused,
    /// A phone was taken out of the pool as broken.
    Broken,
    /// A broken phone was returned to the pool.
    BrokenCleared,
    /// A kind this version does not know (a row written by a newer version).
    #[serde(other)]
    Unknown,
}

impl AuditKind {
    /// Every kind, for documentation and metrics.
    pub const ALL: &'static [AuditKind] = &[
        AuditKind::Tap,
        AuditKind::CheckoutReserved,
        AuditKind::Checkout,
        AuditKind::ReservationMoved,
        AuditKind::Expired,
        AuditKind::ReservationCancelled,
        AuditKind::ReservationRenewed,
        AuditKind::TapRefused,
        AuditKind::BadRead,
        AuditKind::EnrollmentApproved,
        AuditKind::Enrolled,
        AuditKind::Docked,
        AuditKind::Moved,
        AuditKind::DockedAgain,
        AuditKind::Checkin,
        AuditKind::CheckinForeign,
        AuditKind::CheckinDone,
        AuditKind::WipeConfirmed,
        AuditKind::CheckoutWorkflow,
        AuditKind::ForeignDevice,
        AuditKind::SetAside,
        AuditKind::ActionFailed,
        AuditKind::UnexpectedRemoval,
        AuditKind::LoanClosed,
        AuditKind::Lost,
        AuditKind::Found,
        AuditKind::Drift,
        AuditKind::AdminRetry,
        AuditKind::ClockStep,
        AuditKind::Overdue,
        AuditKind::Escalated,
        AuditKind::CurfewRefused,
        AuditKind::Broken,
        AuditKind::BrokenCleared,
        AuditKind::Unknown,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Tap => "tap",
            AuditKind::CheckoutReserved => "checkout-reserved",
            AuditKind::Checkout => "checkout",
            AuditKind::ReservationMoved => "reservation-moved",
            AuditKind::Expired => "expired",
            AuditKind::ReservationCancelled => "reservation-cancelled",
            AuditKind::ReservationRenewed => "reservation-renewed",
            AuditKind::TapRefused => "tap-refused",
            AuditKind::BadRead => "bad-read",
            AuditKind::EnrollmentApproved => "enrollment-approved",
            AuditKind::Enrolled => "enrolled",
            AuditKind::Docked => "docked",
            AuditKind::Moved => "moved",
            AuditKind::DockedAgain => "docked-again",
            AuditKind::Checkin => "checkin",
            AuditKind::CheckinForeign => "checkin-foreign",
            AuditKind::CheckinDone => "checkin-done",
            AuditKind::WipeConfirmed => "wipe-confirmed",
            AuditKind::CheckoutWorkflow => "checkout-workflow",
            AuditKind::ForeignDevice => "foreign-device",
            AuditKind::SetAside => "set-aside",
            AuditKind::ActionFailed => "action-failed",
            AuditKind::UnexpectedRemoval => "unexpected-removal",
            AuditKind::LoanClosed => "loan-closed",
            AuditKind::Lost => "lost",
            AuditKind::Found => "found",
            AuditKind::Drift => "drift",
            AuditKind::AdminRetry => "admin-retry",
            AuditKind::ClockStep => "clock-step",
            AuditKind::Overdue => "overdue",
            AuditKind::Escalated => "escalated",
            AuditKind::CurfewRefused => "curfew-refused",
            AuditKind::Broken => "broken",
            AuditKind::BrokenCleared => "broken-cleared",
            AuditKind::Unknown => "unknown",
        }
    }

    /// The kind stored under `name`; [`AuditKind::Unknown`] for a name this version does
    /// not know.
    pub fn from_name(name: &str) -> AuditKind {
        AuditKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == name)
            .unwrap_or(AuditKind::Unknown)
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// What happened (stored as its kebab-case name: `tap`, `checkout`, `checkin`, …).
    pub kind: AuditKind,
    /// The reader, for taps.
    pub reader: Option<ReaderName>,
    /// The badge number, redacted (`…3F9A`).
    pub badge: Option<String>,
    /// The user.
    pub username: Option<Username>,
    /// The device.
    pub device: Option<DeviceKey>,
    /// The slot.
    pub slot: Option<SlotLabel>,
    /// One sentence for humans.
    pub detail: String,
}

/// The counters the engine allocates ids from; stored with every commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The next check-out id.
    pub next_checkout: u64,
    /// The next action id.
    pub next_action: u64,
}

/// One durable transition: the store applies all of it in one SQLite transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Devices to insert or replace.
    pub devices: Vec<DeviceRecord>,
    /// Check-outs to insert or replace.
    pub checkouts: Vec<CheckoutRecord>,
    /// Outbox rows to insert, or whose engine-owned fields (state, note) to update.
    pub actions: Vec<ActionRecord>,
    /// Audit lines to append.
    pub audit: Vec<AuditEntry>,
    /// The id counters after this transition.
    pub counters: Counters,
    /// Fleet console requests this transition carried out (written in the same
    /// transaction, so a request is carried out once even across a crash).
    #[serde(default)]
    pub fleet_requests: Vec<FleetRequestDone>,
}

impl Commit {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && self.checkouts.is_empty()
            && self.actions.is_empty()
            && self.audit.is_empty()
            && self.fleet_requests.is_empty()
    }
}

/// A fleet console admin request the engine carried out, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRequestDone {
    /// The request's id in the fleet store (`badgedock.admin_requests.id`).
    pub request: i64,
    /// What the station did, in words (shown on the console).
    pub outcome: String,
    /// When.
    pub at: Timestamp,
}

/// What the store hands back at start-up to rebuild the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Every device record.
    pub devices: Vec<DeviceRecord>,
    /// Check-outs in state Reserved or Out.
    pub open_checkouts: Vec<CheckoutRecord>,
    /// Outbox rows in state Pending or Failed.
    pub open_actions: Vec<ActionRecord>,
    /// The id counters.
    pub counters: Counters,
}

/// What the engine wants done. The loop performs these in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "effect")]
pub enum Effect {
    /// Write this transition durably before anything else is shown or answered.
    Commit(Commit),
    /// Ask Workspace ONE what this device is.
    Identify {
        /// The device.
        device: DeviceKey,
        /// Echoed in [`Input::DeviceIdentified`].
        request: u64,
    },
    /// Beep or flash the reader.
    Feedback {
        /// Which reader.
        reader: ReaderName,
        /// Success or failure pattern.
        ok: bool,
    },
    /// The station's answer to a tap, for whoever injected it.
    Decision(TapDecision),
    /// New outbox work is committed; wake the worker.
    WakeOutbox,
}

/// The station's answer to one tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "decision")]
pub enum TapDecision {
    /// A device is reserved: take it from this slot.
    TakeSlot {
        /// Who.
        display_name: String,
        /// Which slot.
        slot: SlotLabel,
        /// Which device.
        device: DeviceKey,
    },
    /// A supervisor's badge approved the enrolment of the badge tapped just before; the
    /// username is to be entered next (dashboard or `badgedock badges enroll`).
    EnrollmentApproved {
        /// The supervisor's name.
        approver: String,
    },
    /// The holder's second tap after docking her phone: it is returned as broken.
    MarkedBroken {
        /// The slot of the broken phone.
        slot: SlotLabel,
    },
    /// Refused; the reason is what the screen says.
    Refused {
        /// The reason, in words for the nurse.
        reason: String,
    },
}

impl TapDecision {
    /// True for [`TapDecision::TakeSlot`] and [`TapDecision::MarkedBroken`] (the tap did
    /// what the nurse asked).
    pub fn accepted(&self) -> bool {
        matches!(
            self,
            TapDecision::TakeSlot { .. } | TapDecision::MarkedBroken { .. }
        )
    }
}

/// How the instruction line should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tone {
    /// Neutral ("Tap your badge").
    Idle,
    /// Good news ("ALICE — TAKE SLOT 3").
    Success,
    /// Needs attention but nothing is wrong ("Slot 2 returned").
    Info,
    /// Refused or failed ("Badge not recognised").
    Error,
}

/// The big line on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// The colour family (always paired with words on screen).
    pub tone: Tone,
    /// The large text: "ALICE MARTIN — TAKE SLOT 3".
    pub headline: String,
    /// A smaller second line.
    pub detail: String,
    /// When it was set; the dashboard returns to idle after a while.
    pub at: Timestamp,
}

/// What a slot shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotState {
    /// Nothing docked.
    Empty,
    /// Docked; Workspace ONE lookup under way.
    Identifying,
    /// Ready to check out.
    Available,
    /// Reserved for a user who has not taken it yet.
    Reserved,
    /// Docked; check-in work under way.
    CheckingIn,
    /// Docked but set aside after repeated MDM failures.
    SetAside,
    /// Docked but Workspace ONE could not identify it.
    Unidentified,
    /// Docked, not one of the station's phones: left alone.
    Foreign,
    /// Erased; waiting for Workspace ONE to show it enrolled again.
    Erasing,
    /// Out of the pool as broken until an operator clears it.
    Broken,
}

/// The MDM side of a device, for the screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncState {
    /// Nothing waiting.
    Synced,
    /// Actions waiting or being retried.
    Pending,
    /// An action failed for good.
    Failed,
}

/// One slot on the screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotView {
    /// The label.
    pub label: SlotLabel,
    /// The state.
    pub state: SlotState,
    /// The docked device's identifier.
    pub device: Option<DeviceKey>,
    /// Its platform.
    pub platform: Option<Platform>,
    /// Its friendly name from Workspace ONE.
    pub device_name: Option<String>,
    /// Its Workspace ONE id.
    pub mdm_id: Option<i64>,
    /// The user it is reserved for or being checked in from.
    pub holder: Option<String>,
    /// Since when it is in this state (reservation time, dock time).
    pub since: Option<Timestamp>,
    /// The MDM state.
    pub sync: SyncState,
    /// The last MDM note (error text) when not synced.
    pub note: Option<String>,
}

/// A device out with a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanView {
    /// The user's display name.
    pub holder: String,
    /// The username.
    pub username: Username,
    /// The device.
    pub device: DeviceKey,
    /// Its friendly name.
    pub device_name: Option<String>,
    /// The slot it came from.
    pub slot: SlotLabel,
    /// When it left.
    pub since: Timestamp,
    /// True when past its due time (or, for a loan without one, out longer than
    /// `checkout.overdue-hours`).
    pub overdue: bool,
    /// When it is due back (wall clock).
    #[serde(default)]
    pub due: Option<Timestamp>,
    /// The due time in the station's time zone, as the screen says it ("Tue 19:30").
    #[serde(default)]
    pub due_text: Option<String>,
    /// The MDM state of its check-out work.
    pub sync: SyncState,
}

/// A reader on the screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderView {
    /// The configured name.
    pub name: ReaderName,
    /// True when it can read.
    pub online: bool,
    /// Why not, when offline.
    pub detail: Option<String>,
}

/// Workspace ONE health on the screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdmView {
    /// None until the first call; then whether the last call got through.
    pub reachable: Option<bool>,
    /// Outbox rows not yet done.
    pub waiting: u32,
    /// The last error.
    pub last_error: Option<String>,
}

/// One line of the recent-events pane (badges already redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// When.
    pub at: Timestamp,
    /// What happened, in words.
    pub text: String,
}

/// Everything the dashboard and `status` show. Published after every input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The station's name.
    pub station: String,
    /// When this snapshot was taken.
    pub at: Timestamp,
    /// The big line.
    pub instruction: Instruction,
    /// Every configured slot, in config order.
    pub slots: Vec<SlotView>,
    /// Devices out with users, oldest first.
    pub loans: Vec<LoanView>,
    /// Readers.
    pub readers: Vec<ReaderView>,
    /// Workspace ONE.
    pub mdm: MdmView,
    /// Recent events, newest first.
    pub events: Vec<EventView>,
    /// Open reservations.
    pub open_reservations: u32,
    /// Every instruction still open, newest first: a take-slot line per open
    /// reservation, then recent refusals and warnings.
    #[serde(default)]
    pub instructions: Vec<Instruction>,
    /// The fleet view; `None` when the station is not part of a fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetView>,
}
