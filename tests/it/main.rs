//! The one integration-test binary; a module per area.
#![allow(clippy::unwrap_used)]
mod dashboard;
