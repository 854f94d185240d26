//! Shared test harnesses. Each area keeps its own file here.

pub mod certs;
pub mod rsyslog;
pub mod smtp;
pub mod station;
