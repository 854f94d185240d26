//! Faults the simulator injects, their text form (`--fault 500:3`, `POST /_sim/faults`)
//! and the queue that decides which call gets which fault.
//!
//! Counted faults (`500:3`, `429`, `timeout:2`, `malformed`, `401`) hit the next N calls
//! that match their scope, in the order the faults were added; time faults (`outage:300s`)
//! hit every call until they end; the others (`latency:300`, `token-expiry`,
//! `token-lifetime:30s`) change the simulator's settings when they are applied.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One fault. [`parse_fault`] reads its text form and `Display` writes it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "fault")]
pub enum Fault {
    /// The next `count` matching calls answer this 5xx status (`500`, `500:3`, `503:2`).
    ServerError {
        /// The status, 500–599.
        status: u16,
        /// How many calls.
        count: u32,
        /// Which calls (see [`Scope`]).
        scope: Scope,
    },
    /// The next `count` matching calls answer 429 (`429:5`), with `Retry-After` when
    /// `retry_after_s` is set (`429-retry-after:2`, `429-retry-after:2:5`).
    TooManyRequests {
        /// `Retry-After` in seconds, or none.
        retry_after_s: Option<u64>,
        /// How many calls.
        count: u32,
        /// Which calls.
        scope: Scope,
    },
    /// The next `count` matching calls get no answer until the client gives up
    /// (`timeout`, `timeout:2`); the simulator holds them for its hang time.
    Timeout {
        /// How many calls.
        count: u32,
        /// Which calls.
        scope: Scope,
    },
    /// The next `count` matching calls that answer JSON get a truncated body
    /// (`malformed`, `malformed:2`).
    Malformed {
        /// How many calls.
        count: u32,
        /// Which calls.
        scope: Scope,
    },
    /// The next `count` matching calls answer 401 with an empty body, as for a revoked
    /// token (`401`, `401:2`).
    Unauthorized {
        /// How many calls.
        count: u32,
        /// Which calls.
        scope: Scope,
    },
    /// Every token issued so far expires now (`token-expiry`).
    TokenExpiry,
    /// Tokens issued from now on live this long (`token-lifetime:30s`).
    TokenLifetime {
        /// Lifetime in milliseconds.
        lifetime_ms: u64,
    },
    /// Every call, the token endpoint included, answers 503 with an HTML page for this
    /// long (`outage:300s`, `outage:2m`, `outage:500ms`; a bare number is seconds).
    Outage {
        /// Length in milliseconds.
        duration_ms: u64,
    },
    /// Every call waits this long before it is answered (`latency:300`, `latency:300ms`).
    Latency {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// The `Date` header of API answers is this many seconds ahead of the real clock,
    /// behind when negative (`clock-skew:400`, `clock-skew:-90s`).
    ClockSkew {
        /// Seconds.
        seconds: i64,
    },
}

/// Which calls a counted fault hits: `@PATCH` (a method), `@/API/mdm` (a path prefix,
/// case-insensitive), or every call to the API and the token endpoint when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every call (the simulator's own `/_sim` routes are never faulted).
    #[default]
    All,
    /// Calls with this method (upper-case).
    Method(String),
    /// Calls whose path starts with this prefix (compared case-insensitively).
    PathPrefix(String),
}

impl Scope {
    /// True when a call with this method and path is in scope.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Method(wanted) => method.eq_ignore_ascii_case(wanted),
            Scope::PathPrefix(prefix) => path
                .to_ascii_lowercase()
                .starts_with(&prefix.to_ascii_lowercase()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => Ok(()),
            Scope::Method(method) => write!(f, "@{method}"),
            Scope::PathPrefix(prefix) => write!(f, "@{prefix}"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::ServerError {
                status,
                count,
                scope,
            } => write!(f, "{status}:{count}{scope}"),
            Fault::TooManyRequests {
                retry_after_s: None,
                count,
                scope,
            } => write!(f, "429:{count}{scope}"),
            Fault::TooManyRequests {
                retry_after_s: Some(seconds),
                count,
                scope,
            } => write!(f, "429-retry-after:{seconds}:{count}{scope}"),
            Fault::Timeout { count, scope } => write!(f, "timeout:{count}{scope}"),
            Fault::Malformed { count, scope } => write!(f, "malformed:{count}{scope}"),
            Fault::Unauthorized { count, scope } => write!(f, "401:{count}{scope}"),
            Fault::TokenExpiry => f.write_str("token-expiry"),
            Fault::TokenLifetime { lifetime_ms } => write!(f, "token-lifetime:{lifetime_ms}ms"),
            Fault::Outage { duration_ms } => write!(f, "outage:{duration_ms}ms"),
            Fault::Latency { ms } => write!(f, "latency:{ms}ms"),
            Fault::ClockSkew { seconds } => write!(f, "clock-skew:{seconds}s"),
        }
    }
}

/// Reads a fault written as for `--fault`:
///
/// | text | meaning |
/// |---|---|
/// | `500`, `500:3`, `503:2` | the next 1 / 3 / 2 calls answer that 5xx |
/// | `429`, `429:5` | the next calls answer 429 without `Retry-After` |
/// | `429-retry-after:2`, `429-retry-after:2:5` | 429 with `Retry-After: 2`, once / 5 times |
/// | `timeout`, `timeout:2` | the next calls hang until the client gives up |
/// | `malformed`, `malformed:2` | the next JSON answers are cut short |
/// | `401`, `401:2` | the next calls answer 401 with an empty body |
/// | `token-expiry` | every token issued so far expires now |
/// | `token-lifetime:30s` | new tokens live 30 s |
/// | `outage:300s`, `outage:5m`, `outage:500ms` | every call answers 503 for that long |
/// | `latency:300`, `latency:300ms` | every call waits 300 ms |
///
/// Counted faults take an optional scope suffix: `500:3@PATCH`, `429:5@/API/system`.
pub fn parse_fault(text: &str) -> Result<Fault, String> {
    let text = text.trim();
    let (body, scope) = match text.split_once('@') {
        Some((body, scope)) => (body.trim(), parse_scope(scope.trim())?),
        None => (text, Scope::All),
    };
    let mut parts = body.split(':').map(str::trim);
    let kind = parts.next().unwrap_or_default().to_ascii_lowercase();
    let rest: Vec<&str> = parts.collect();
    let count = |index: usize| -> Result<u32, String> {
        match rest.get(index) {
            None => Ok(1),
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{text:?}: {value:?} is not a positive call count")),
        }
    };
    let too_many = |max: usize| -> Result<(), String> {
        if rest.len() > max {
            Err(format!("{text:?}: too many ':' parts"))
        } else {
            Ok(())
        }
    };
    let counted = !matches!(scope, Scope::All);
    let fault = match kind.as_str() {
        "429" => {
            too_many(1)?;
            Fault::TooManyRequests {
                retry_after_s: None,
                count: count(0)?,
                scope,
            }
        }
        "429-retry-after" => {
            too_many(2)?;
            let seconds = rest
                .first()
                .and_then(|s| s.trim_end_matches('s').parse::<u64>().ok())
                .ok_or_else(|| format!("{text:?}: write 429-retry-after:SECONDS[:COUNT]"))?;
            Fault::TooManyRequests {
                retry_after_s: Some(seconds),
                count: count(1)?,
                scope,
            }
        }
        "401" => {
            too_many(1)?;
            Fault::Unauthorized { count: count(0)?, scope }
        }
        "timeout" => {
            too_many(1)?;
            Fault::Timeout { count: count(0)?, scope }
        }
        "malformed" => {
            too_many(1)?;
            Fault::Malformed { count: count(0)?, scope }
        }
        status if status.len() == 3 && status.starts_with('5') && status.chars().all(|c| c.is_ascii_digit()) => {
            too_many(1)?;
            Fault::ServerError {
                status: status.parse().map_err(|_| format!("{text:?}: bad status"))?,
                count: count(0)?,
                scope,
            }
        }
        "token-expiry" if rest.is_empty() && !counted => Fault::TokenExpiry,
        "token-lifetime" if !counted => Fault::TokenLifetime {
            lifetime_ms: duration_ms(text, rest.first().copied(), 1000)?,
        },
        "outage" if !counted => Fault::Outage {
            duration_ms: duration_ms(text, rest.first().copied(), 1000)?,
        },
        "latency" if !counted => Fault::Latency {
            ms: duration_ms(text, rest.first().copied(), 1)?,
        },
        "clock-skew" if !counted => {
            too_many(1)?;
            let value = rest.first().copied().unwrap_or_default();
            Fault::ClockSkew {
                seconds: value
                    .trim_end_matches('s')
                    .parse::<i64>()
                    .map_err(|_| format!("{text:?}: write clock-skew:SECONDS, e.g. clock-skew:400 or clock-skew:-90s"))?,
            }
        }
        "token-expiry" | "token-lifetime" | "outage" | "latency" | "clock-skew" => {
            return Err(format!("{text:?}: only counted faults (500, 429, timeout, malformed, 401) take an @scope"));
        }
        _ => {
            return Err(format!(
                "{text:?} is not a fault: use 500[:N], 429[:N], 429-retry-after:S[:N], timeout[:N], malformed[:N], 401[:N], token-expiry, token-lifetime:30s, outage:300s, latency:300ms or clock-skew:SECONDS"
            ))
        }
    };
    Ok(fault)
}

fn parse_scope(scope: &str) -> Result<Scope, String> {
    if scope.starts_with('/') {
        Ok(Scope::PathPrefix(scope.to_string()))
    } else if !scope.is_empty() && scope.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(Scope::Method(scope.to_ascii_uppercase()))
    } else {
        Err(format!(
            "@{scope}: a scope is a method (@PATCH) or a path prefix (@/API/mdm)"
        ))
    }
}

/// `300`, `300s`, `300ms`, `5m`; a bare number is in `bare_unit_ms`.
fn duration_ms(text: &str, value: Option<&str>, bare_unit_ms: u64) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{text:?}: give a duration, e.g. 300s or 500ms"))?;
    let (digits, unit_ms) = if let Some(number) = value.strip_suffix("ms") {
        (number, 1)
    } else if let Some(number) = value.strip_suffix('s') {
        (number, 1000)
    } else if let Some(number) = value.strip_suffix('m') {
        (number, 60_000)
    } else {
        (value, bare_unit_ms)
    };
    digits
        .trim()
        .parse::<u64>()
        .map(|n| n.saturating_mul(unit_ms))
        .map_err(|_| format!("{text:?}: {value:?} is not a duration such as 300s or 500ms"))
}

/// A counted fault with the calls it still has to hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ActiveFault {
    pub(crate) fault: Fault,
    pub(crate) remaining: u32,
}

/// What a counted fault does to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    ServerError(u16),
    TooManyRequests(Option<u64>),
    Timeout,
    Unauthorized,
}

impl Hit {
    pub(crate) fn label(self) -> String {
        match self {
            Hit::ServerError(status) => status.to_string(),
            Hit::TooManyRequests(None) => "429".into(),
            Hit::TooManyRequests(Some(seconds)) => format!("429-retry-after:{seconds}"),
            Hit::Timeout => "timeout".into(),
            Hit::Unauthorized => "401".into(),
        }
    }
}

impl ActiveFault {
    pub(crate) fn scope(&self) -> Option<&Scope> {
        match &self.fault {
            Fault::ServerError { scope, .. }
            | Fault::TooManyRequests { scope, .. }
            | Fault::Timeout { scope, .. }
            | Fault::Malformed { scope, .. }
            | Fault::Unauthorized { scope, .. } => Some(scope),
            _ => None,
        }
    }

    /// The hit this fault gives a call before it is answered (malformed acts after).
    pub(crate) fn hit(&self) -> Option<Hit> {
        match &self.fault {
            Fault::ServerError { status, .. } => Some(Hit::ServerError(*status)),
            Fault::TooManyRequests { retry_after_s, .. } => {
                Some(Hit::TooManyRequests(*retry_after_s))
            }
            Fault::Timeout { .. } => Some(Hit::Timeout),
            Fault::Unauthorized { .. } => Some(Hit::Unauthorized),
            _ => None,
        }
    }
}

/// The count of a counted fault, or `None` for a setting or time fault.
pub(crate) fn fault_count(fault: &Fault) -> Option<u32> {
    match fault {
        Fault::ServerError { count, .. }
        | Fault::TooManyRequests { count, .. }
        | Fault::Timeout { count, .. }
        | Fault::Malformed { count, .. }
        | Fault::Unauthorized { count, .. } => Some(*count),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses_and_round_trips() {
        for text in [
            "500",
            "500:3",
            "503:2",
            "429",
            "429:5",
            "429-retry-after:2",
            "429-retry-after:2:5",
            "timeout",
            "timeout:1",
            "malformed:1",
            "401:2",
            "token-expiry",
            "token-lifetime:30s",
            "outage:300s",
            "outage:5m",
            "outage:500ms",
            "latency:300",
            "clock-skew:400",
            "clock-skew:-90s",
            "500:3@PATCH",
            "429:5@/API/system",
        ] {
            let fault = parse_fault(text).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(parse_fault(&fault.to_string()), Ok(fault.clone()), "{text}");
        }
        assert_eq!(
            parse_fault("outage:300s"),
            Ok(Fault::Outage {
                duration_ms: 300_000
            })
        );
        assert_eq!(
            parse_fault("outage:2"),
            Ok(Fault::Outage { duration_ms: 2_000 })
        );
        assert_eq!(parse_fault("latency:300"), Ok(Fault::Latency { ms: 300 }));
        assert_eq!(
            parse_fault("429-retry-after:2"),
            Ok(Fault::TooManyRequests {
                retry_after_s: Some(2),
                count: 1,
                scope: Scope::All
            })
        );
    }

    #[test]
    fn bad_forms_say_what_to_write() {
        for text in [
            "",
            "404",
            "500:0",
            "500:x",
            "outage",
            "latency:fast",
            "token-expiry@PATCH",
            "500@x y",
            "429:1:2",
            "clock-skew:soon",
        ] {
            let err = parse_fault(text).expect_err(text);
            assert!(!err.is_empty());
        }
    }

    #[test]
    fn scopes() {
        assert!(Scope::Method("PATCH".into()).matches("patch", "/x"));
        assert!(Scope::PathPrefix("/API/mdm".into()).matches("GET", "/api/MDM/devices"));
        assert!(!Scope::PathPrefix("/API/system".into()).matches("GET", "/api/mdm/devices"));
    }
}
