//! Shared test harnesses. Each area keeps its own file here.

pub mod rsyslog;
pub mod station;
