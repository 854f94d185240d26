//! The one integration-test binary; a module per area. Harnesses live in `support/`.
#![allow(clippy::unwrap_used)]

mod support;

mod audit;
mod cli;
mod crash;
mod daemon;
mod dashboard;
mod demo;
mod deploy;
mod directory;
mod dock;
mod doctor;
mod enrollment;
mod escalation;
mod fleet;
mod fleet_console;
mod formats;
mod hid;
mod journal;
mod lending;
mod mdm;
mod metrics;
mod ops;
mod outbox;
mod pcsc;
mod pcsc_e2e;
mod reload;
mod report;
mod siem;
mod sim;
mod storage;
mod store;
mod terminal;
mod tidy;
mod uemsim;
