//! The one integration-test binary; a module per area. Harnesses live in `support/`.
#![allow(clippy::unwrap_used)]

mod support;

mod cli;
mod crash;
mod daemon;
mod dashboard;
mod demo;
mod deploy;
mod directory;
mod dock;
mod enrollment;
mod fleet;
mod fleet_console;
mod formats;
mod hid;
mod mdm;
mod outbox;
mod pcsc;
mod pcsc_e2e;
mod store;
mod terminal;
mod tidy;
mod uemsim;
