//! The one integration-test binary; a module per area. Harnesses live in `support/`.
#![allow(clippy::unwrap_used)]

mod support;

mod cli;
mod crash;
mod daemon;
mod demo;
mod deploy;
mod directory;
mod dock;
mod formats;
mod hid;
mod mdm;
mod outbox;
mod pcsc;
mod store;
mod tidy;
mod uemsim;
mod dashboard;
