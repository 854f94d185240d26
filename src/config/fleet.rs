//! `[fleet]`: the PostgreSQL fleet store a station publishes to (optional).
//!
//! ```toml
//! [fleet]
//! url = "postgresql://station_3west@fleet-db.example.org:5432/badgedock"
//! station-id = "3west"
//! password-file = "fleet-password"        # or client-cert-file + client-key-file
//! ca-file = "/etc/badgedock/fleet-ca.pem"  # TLS (rustls) is required unless tls = false
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::Checker;
use crate::domain::Secret;

/// The raw `[fleet]` table.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FleetFile {
    pub url: Spanned<String>,
    pub station_id: Spanned<String>,
    pub password_file: Option<Spanned<PathBuf>>,
    pub client_cert_file: Option<Spanned<PathBuf>>,
    pub client_key_file: Option<PathBuf>,
    pub ca_file: Option<Spanned<PathBuf>>,
    pub tls: Option<bool>,
    pub poll_ms: Option<Spanned<u64>>,
}

/// How the connection to PostgreSQL is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetTls {
    /// Plain TCP or a Unix socket (`tls = false`): only for a database on the same host.
    Disabled,
    /// TLS with rustls, trusting the CA in this file; a client certificate when given.
    Required {
        /// PEM file of the CA that signed the server's certificate.
        ca_file: PathBuf,
        /// PEM certificate chain and key for certificate authentication.
        client_cert: Option<(PathBuf, PathBuf)>,
    },
}

/// `[fleet]`, validated.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The connection URL as written (it holds no password: that is refused).
    pub url: String,
    /// This station's id in the fleet store (`badgedock.stations.station_id`).
    pub station_id: String,
    /// The role's password, from `password-file`.
    pub password: Option<Secret>,
    /// TLS.
    pub tls: FleetTls,
    /// How often the station reads the fleet (other stations' loans, admin requests)
    /// and checks for audit lines to publish.
    pub poll: Duration,
}

impl FleetConfig {
    /// The connection settings for tokio-postgres (the password added from its file).
    pub fn pg_config(&self) -> tokio_postgres::Config {
        // Validated at load; a URL that no longer parses cannot happen here.
        let mut config = tokio_postgres::Config::from_str(&self.url).unwrap_or_default();
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        config.application_name("badgedock");
        config.connect_timeout(Duration::from_secs(5));
        config
    }
}

impl Checker<'_> {
    pub(super) fn resolve_fleet(&mut self, fleet: &FleetFile, base: &Path) -> Option<FleetConfig> {
        let mut ok = true;
        let url = fleet.url.get_ref().trim().to_string();
        match tokio_postgres::Config::from_str(&url) {
            Ok(parsed) => {
                if parsed.get_password().is_some() {
                    self.problem(
                        Some(&fleet.url),
                        "fleet.url",
                        "holds a password: remove it from the URL and put it in fleet.password-file",
                    );
                    ok = false;
                }
                if parsed.get_user().is_none() || parsed.get_dbname().is_none() {
                    self.problem(
                        Some(&fleet.url),
                        "fleet.url",
                        "needs a user (the station's role) and a database, e.g. postgresql://station_3west@fleet-db:5432/badgedock",
                    );
                    ok = false;
                }
                if parsed.get_hosts().is_empty() {
                    self.problem(
                        Some(&fleet.url),
                        "fleet.url",
                        "names no host: write postgresql://ROLE@HOST:5432/DATABASE",
                    );
                    ok = false;
                }
            }
            Err(err) => {
                self.problem(
                    Some(&fleet.url),
                    "fleet.url",
                    format!(
                        "is not a PostgreSQL URL ({err}): write postgresql://ROLE@HOST:5432/DATABASE"
                    ),
                );
                ok = false;
            }
        }
        let station_id = fleet.station_id.get_ref().trim().to_string();
        let id_ok = !station_id.is_empty()
            && station_id.len() <= 64
            && station_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            self.problem(
                Some(&fleet.station_id),
                "fleet.station-id",
                "must be 1 to 64 letters, digits, '-' or '_', as registered in badgedock.stations",
            );
            ok = false;
        }
        let password = fleet
            .password_file
            .as_ref()
            .and_then(|path| self.secret("fleet.password-file", path, base));
        if fleet.password_file.is_some() && password.is_none() {
            ok = false;
        }
        let relative = |path: &PathBuf| {
            if path.is_relative() {
                base.join(path)
            } else {
                path.clone()
            }
        };
        let client_cert = match (&fleet.client_cert_file, &fleet.client_key_file) {
            (Some(cert), Some(key)) => Some((relative(cert.get_ref()), relative(key))),
            (None, None) => None,
            (cert, _) => {
                self.problem(
                    cert.as_ref(),
                    "fleet.client-cert-file",
                    "client-cert-file and client-key-file go together: set both or neither",
                );
                ok = false;
                None
            }
        };
        let tls = if fleet.tls == Some(false) {
            if client_cert.is_some() {
                self.problem(
                    fleet.client_cert_file.as_ref(),
                    "fleet.client-cert-file",
                    "needs TLS: remove `tls = false`",
                );
                ok = false;
            }
            FleetTls::Disabled
        } else {
            match &fleet.ca_file {
                // Checked (exists, holds a PEM certificate) with the machine, like every CA file.
                Some(ca) => FleetTls::Required {
                    ca_file: self.ca_file("fleet.ca-file", ca, base),
                    client_cert,
                },
                None => {
                    self.problem(
                        Some(&fleet.url),
                        "fleet.ca-file",
                        "is missing: name the PEM file of the CA that signed the fleet database's certificate (or set tls = false for a database on this host)",
                    );
                    ok = false;
                    FleetTls::Disabled
                }
            }
        };
        let poll_ms = fleet
            .poll_ms
            .as_ref()
            .map(|p| *p.get_ref())
            .unwrap_or(2_000);
        if !(100..=60_000).contains(&poll_ms) {
            self.problem(
                fleet.poll_ms.as_ref(),
                "fleet.poll-ms",
                "must be between 100 and 60000 milliseconds",
            );
            ok = false;
        }
        ok.then(|| FleetConfig {
            url,
            station_id,
            password,
            tls,
            poll: Duration::from_millis(poll_ms),
        })
    }
}
