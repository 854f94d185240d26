//! badgedock: a badge tap at a hospital phone-charging cabinet checks a phone out to the
//! nurse in Workspace ONE UEM, and docking it checks it back in. The pure check-out
//! engine lives in `checkout`; readers, docks, the MDM client, the store, the control
//! socket and the dashboard are edges wired together by `daemon`. See
//! `docs/ARCHITECTURE.md` for the map, the data flow and the invariants.

pub mod domain;

pub mod badges;
pub mod checkout;
pub mod lending;
pub mod mail;

pub mod config;
pub mod control;
pub mod dashboard;
pub mod directory;
pub mod dock;
pub mod doctor;
pub mod fleet;
pub mod mdm;
pub mod metrics;
pub mod outbox;
pub mod readers;
pub mod report;
pub mod siem;
pub mod sim;
pub mod store;
pub mod uemsim;

pub mod daemon;
