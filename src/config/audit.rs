//! `[audit]` (retention) and `[siem]` (forwarding the audit to syslog): their raw TOML
//! shape and their validation, with the same key-and-line problems as the rest of the
//! config.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::Checker;

/// `[audit]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuditFile {
    /// Remove audit rows older than this many days; absent keeps everything.
    pub retention_days: Option<Spanned<i64>>,
}

/// `[siem]` as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SiemFile {
    /// `host:port` of the syslog receiver.
    pub target: Spanned<String>,
    /// `udp`, `tcp` or `tls`.
    pub transport: Option<Spanned<String>>,
    /// `rfc5424` or `cef`.
    pub format: Option<Spanned<String>>,
    /// PEM CA certificates for `tls`; the system's roots when absent.
    pub ca_file: Option<PathBuf>,
    /// The name the receiver's TLS certificate is checked against (the target's host
    /// when absent).
    pub server_name: Option<Spanned<String>>,
    /// Seconds between station health lines; 0 turns them off. Default 300.
    pub health_interval_seconds: Option<Spanned<u64>>,
}

/// `[audit]`, validated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditConfig {
    /// How long audit rows are kept; `None` keeps everything.
    pub retention: Option<Duration>,
}

/// How syslog lines travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiemTransport {
    /// RFC 5426: one message per datagram.
    Udp,
    /// RFC 6587 octet counting over TCP.
    Tcp,
    /// RFC 5425: octet counting over TLS (rustls).
    Tls,
}

/// What a syslog line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiemFormat {
    /// RFC 5424 with structured data.
    Rfc5424,
    /// ArcSight CEF inside an RFC 5424 message.
    Cef,
}

/// `[siem]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiemConfig {
    /// `host:port`.
    pub target: String,
    /// The host part of `target`.
    pub host: String,
    /// The port part of `target`.
    pub port: u16,
    /// UDP, TCP or TLS.
    pub transport: SiemTransport,
    /// RFC 5424 or CEF.
    pub format: SiemFormat,
    /// CA certificates for TLS (absolute path).
    pub ca_file: Option<PathBuf>,
    /// The TLS server name.
    pub server_name: String,
    /// Between health lines; `None` sends none.
    pub health_interval: Option<Duration>,
}

impl Checker<'_> {
    pub(super) fn resolve_audit(&mut self, raw: &AuditFile) -> AuditConfig {
        let retention = match &raw.retention_days {
            None => None,
            Some(days) if (1..=36_500).contains(days.get_ref()) => Some(Duration::from_secs(
                u64::try_from(*days.get_ref()).unwrap_or(1) * 86_400,
            )),
            Some(days) => {
                self.problem(
                    Some(days),
                    "audit.retention-days",
                    format!(
                        "{} is not a number of days from 1 to 36500: set how many days of audit to keep, or remove the key to keep everything",
                        days.get_ref()
                    ),
                );
                None
            }
        };
        AuditConfig { retention }
    }

    pub(super) fn resolve_siem(&mut self, raw: &SiemFile, base: &Path) -> Option<SiemConfig> {
        let target = raw.target.get_ref().trim().to_string();
        let split = target
            .rsplit_once(':')
            .and_then(|(host, port)| {
                Some((host.trim_matches(['[', ']']), port.parse::<u16>().ok()?))
            })
            .filter(|(host, port)| !host.is_empty() && *port > 0);
        if split.is_none() {
            self.problem(
                Some(&raw.target),
                "siem.target",
                format!("{target:?} is not host:port: write the syslog receiver as e.g. \"siem.example.org:6514\""),
            );
        }
        let (host, port) = split.unwrap_or(("", 0));
        let transport = match raw.transport.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("udp") => Some(SiemTransport::Udp),
            Some("tcp") => Some(SiemTransport::Tcp),
            Some("tls") => Some(SiemTransport::Tls),
            Some(other) => {
                self.problem(
                    raw.transport.as_ref(),
                    "siem.transport",
                    format!("{other:?} is not a choice: use \"udp\", \"tcp\" or \"tls\""),
                );
                None
            }
        };
        let format = match raw.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("rfc5424") => Some(SiemFormat::Rfc5424),
            Some("cef") => Some(SiemFormat::Cef),
            Some(other) => {
                self.problem(
                    raw.format.as_ref(),
                    "siem.format",
                    format!("{other:?} is not a choice: use \"rfc5424\" or \"cef\""),
                );
                None
            }
        };
        let ca_file = raw.ca_file.as_ref().map(|path| base.join(path));
        if ca_file.is_some() && transport.is_some_and(|t| t != SiemTransport::Tls) {
            self.problem::<()>(
                None,
                "siem.ca-file",
                "is only used with transport = \"tls\": remove it or switch to TLS",
            );
        }
        let server_name = raw
            .server_name
            .as_ref()
            .map(|name| name.get_ref().clone())
            .unwrap_or_else(|| host.to_string());
        if transport == Some(SiemTransport::Tls)
            && rustls::pki_types::ServerName::try_from(server_name.clone()).is_err()
        {
            self.problem(
                raw.server_name.as_ref(),
                "siem.server-name",
                format!("{server_name:?} is not a DNS name or IP address: set the name in the receiver's certificate"),
            );
        }
        let health_interval = match raw.health_interval_seconds.as_ref() {
            None => Some(Duration::from_secs(300)),
            Some(seconds) if *seconds.get_ref() == 0 => None,
            Some(seconds) if *seconds.get_ref() < 10 => {
                self.problem(
                    Some(seconds),
                    "siem.health-interval-seconds",
                    "must be 0 (no health lines) or at least 10 seconds",
                );
                None
            }
            Some(seconds) => Some(Duration::from_secs(*seconds.get_ref())),
        };
        let (Some(_), Some(transport), Some(format)) = (split, transport, format) else {
            return None;
        };
        Some(SiemConfig {
            host: host.to_string(),
            port,
            target,
            transport,
            format,
            ca_file,
            server_name,
            health_interval,
        })
    }
}
