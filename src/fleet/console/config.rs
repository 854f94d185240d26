//! The console's config file (`badgedock fleet serve --config FILE`):
//!
//! ```toml
//! [fleet]
//! url = "postgresql://fleet_console@fleet-db.example.org:5432/badgedock"
//! password-file = "console-password"
//! ca-file = "/etc/badgedock/fleet-ca.pem"
//!
//! [console]
//! listen = "127.0.0.1:8080"
//! users-file = "console-users"          # USER:ROLE:ARGON2-HASH lines (viewer or admin)
//! proxy-header = "X-Remote-User"        # single sign-on through a reverse proxy …
//! trusted-proxies = ["127.0.0.1"]       # … trusted only from these addresses
//! proxy-admins = ["ops.lead"]           # proxy users who are admins (others: viewers)
//! ```
//!
//! Problems are reported all at once with key and line, like the station's config.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, FleetConfig, FleetTls, LoadEnv, Problem};
use crate::domain::Secret;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConsoleFile {
    fleet: FleetSection,
    console: ConsoleSection,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FleetSection {
    url: Spanned<String>,
    password_file: Option<Spanned<PathBuf>>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    ca_file: Option<Spanned<PathBuf>>,
    tls: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConsoleSection {
    listen: Spanned<String>,
    users_file: Option<Spanned<PathBuf>>,
    proxy_header: Option<Spanned<String>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    #[serde(default)]
    proxy_admins: Vec<String>,
    /// Session cookies carry `Secure` (the console is served over HTTPS by its proxy).
    secure_cookies: Option<bool>,
    /// A loan is due this many hours after it started.
    loan_hours: Option<u32>,
    /// A loan still open this many hours after it started is listed as lost.
    lost_after_hours: Option<u32>,
}

/// Who may do what in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads every page.
    Viewer,
    /// Also queues admin requests.
    Admin,
}

/// A local console user (from `users-file`).
#[derive(Debug, Clone)]
pub struct LocalUser {
    /// The sign-in name.
    pub name: String,
    /// Viewer or admin.
    pub role: Role,
    /// The argon2 PHC string.
    pub hash: Secret,
}

/// Single sign-on through a reverse proxy.
#[derive(Debug, Clone)]
pub struct ProxyAuth {
    /// The header holding the signed-in username.
    pub header: String,
    /// Only requests from these addresses may set it.
    pub trusted: Vec<IpAddr>,
    /// Proxy users who are admins.
    pub admins: Vec<String>,
}

/// The console's config, validated.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The fleet store (as the console role; `station_id` is empty).
    pub fleet: FleetConfig,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Local users.
    pub users: Vec<LocalUser>,
    /// Proxy sign-on, when configured.
    pub proxy: Option<ProxyAuth>,
    /// `Secure` on cookies.
    pub secure_cookies: bool,
    /// When a loan is due.
    pub loan_hours: u32,
    /// When an open loan counts as lost.
    pub lost_after_hours: u32,
}

struct Problems<'a> {
    text: &'a str,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn add<T>(&mut self, at: Option<&Spanned<T>>, key: &str, message: impl Into<String>) {
        let line = at.map(|spanned| {
            self.text
                .get(..spanned.span().start.min(self.text.len()))
                .map(|prefix| prefix.matches('\n').count() + 1)
                .unwrap_or(1)
        });
        self.list.push(Problem {
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }
}

fn resolve_path(base: &Path, path: &Path, env: &LoadEnv) -> PathBuf {
    if path.is_relative() {
        if let Some(dir) = &env.credentials_dir {
            let candidate = dir.join(path);
            if candidate.exists() {
                return candidate;
            }
        }
        base.join(path)
    } else {
        path.to_path_buf()
    }
}

/// Reads and validates a console config file.
pub fn load(path: &Path, env: &LoadEnv) -> Result<ConsoleConfig, ConfigError> {
    let fail = |line, key: &str, message: String| ConfigError {
        path: path.to_path_buf(),
        problems: vec![Problem {
            line,
            key: key.into(),
            message,
        }],
    };
    let text = std::fs::read_to_string(path).map_err(|err| {
        fail(
            None,
            "(file)",
            format!("cannot read the console config: {err}"),
        )
    })?;
    let raw: ConsoleFile = toml::from_str(&text).map_err(|err| {
        let line = err
            .span()
            .and_then(|span| text.get(..span.start))
            .map(|prefix| prefix.matches('\n').count() + 1);
        fail(line, "(syntax)", err.message().trim().to_string())
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut problems = Problems {
        text: &text,
        list: Vec::new(),
    };

    let url = raw.fleet.url.get_ref().trim().to_string();
    match tokio_postgres::Config::from_str(&url) {
        Ok(parsed) if parsed.get_password().is_some() => problems.add(
            Some(&raw.fleet.url),
            "fleet.url",
            "holds a password: remove it and put it in fleet.password-file",
        ),
        Ok(parsed) if parsed.get_user().is_none() || parsed.get_dbname().is_none() => problems.add(
            Some(&raw.fleet.url),
            "fleet.url",
            "needs a user (the console's role) and a database, e.g. postgresql://fleet_console@fleet-db:5432/badgedock",
        ),
        Ok(_) => {}
        Err(err) => problems.add(
            Some(&raw.fleet.url),
            "fleet.url",
            format!("is not a PostgreSQL URL ({err})"),
        ),
    }
    let password = match &raw.fleet.password_file {
        None => None,
        Some(file) => {
            let full = resolve_path(&base, file.get_ref(), env);
            match std::fs::read_to_string(&full) {
                Ok(text) if !text.trim().is_empty() => {
                    Some(Secret::new(text.trim_end_matches(['\n', '\r'])))
                }
                Ok(_) => {
                    problems.add(
                        Some(file),
                        "fleet.password-file",
                        format!(
                            "{} is empty: put the console role's password in it",
                            full.display()
                        ),
                    );
                    None
                }
                Err(err) => {
                    problems.add(Some(file), "fleet.password-file", format!("cannot read {} ({err}): create it (mode 0600) or pass it with LoadCredential=", full.display()));
                    None
                }
            }
        }
    };
    let tls = if raw.fleet.tls == Some(false) {
        FleetTls::Disabled
    } else {
        match &raw.fleet.ca_file {
            Some(ca) => FleetTls::Required {
                ca_file: resolve_path(&base, ca.get_ref(), env),
                client_cert: match (&raw.fleet.client_cert_file, &raw.fleet.client_key_file) {
                    (Some(cert), Some(key)) => Some((
                        resolve_path(&base, cert, env),
                        resolve_path(&base, key, env),
                    )),
                    _ => None,
                },
            },
            None => {
                problems.add(
                    Some(&raw.fleet.url),
                    "fleet.ca-file",
                    "is missing: name the PEM file of the fleet database's CA (or set tls = false for a database on this host)",
                );
                FleetTls::Disabled
            }
        }
    };

    let listen = match raw.console.listen.get_ref().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.add(
                Some(&raw.console.listen),
                "console.listen",
                "is not an address:port, e.g. 127.0.0.1:8080",
            );
            None
        }
    };
    let mut users = Vec::new();
    if let Some(file) = &raw.console.users_file {
        let full = resolve_path(&base, file.get_ref(), env);
        match std::fs::read_to_string(&full) {
            Err(err) => problems.add(
                Some(file),
                "console.users-file",
                format!(
                    "cannot read {} ({err}): create it with `badgedock fleet hash-password` lines",
                    full.display()
                ),
            ),
            Ok(text) => {
                for (number, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let mut parts = line.splitn(3, ':');
                    let (name, role, hash) = (parts.next(), parts.next(), parts.next());
                    let role = match role {
                        Some("admin") => Some(Role::Admin),
                        Some("viewer") => Some(Role::Viewer),
                        _ => None,
                    };
                    match (name, role, hash) {
                        (Some(name), Some(role), Some(hash))
                            if !name.is_empty()
                                && argon2::PasswordHash::new(hash).is_ok() =>
                        {
                            users.push(LocalUser {
                                name: name.to_string(),
                                role,
                                hash: Secret::new(hash),
                            })
                        }
                        _ => problems.add(
                            Some(file),
                            "console.users-file",
                            format!(
                                "{} line {}: expected USER:viewer|admin:ARGON2-HASH (make the hash with `badgedock fleet hash-password`)",
                                full.display(),
                                number + 1
                            ),
                        ),
                    }
                }
            }
        }
    }
    let mut trusted = Vec::new();
    for proxy in &raw.console.trusted_proxies {
        match proxy.get_ref().parse::<IpAddr>() {
            Ok(addr) => trusted.push(addr),
            Err(_) => problems.add(
                Some(proxy),
                "console.trusted-proxies",
                format!("{:?} is not an IP address", proxy.get_ref()),
            ),
        }
    }
    let proxy = match &raw.console.proxy_header {
        Some(header) => {
            let name = header.get_ref().trim();
            if axum::http::HeaderName::from_str(name).is_err() {
                problems.add(
                    Some(header),
                    "console.proxy-header",
                    "is not an HTTP header name",
                );
            }
            if trusted.is_empty() {
                problems.add(
                    Some(header),
                    "console.trusted-proxies",
                    "is empty: list the reverse proxy's address, or anyone could sign in by sending the header",
                );
            }
            Some(ProxyAuth {
                header: name.to_ascii_lowercase(),
                trusted,
                admins: raw.console.proxy_admins.clone(),
            })
        }
        None => None,
    };
    if proxy.is_none() && raw.console.users_file.is_none() {
        problems.add(
            Some(&raw.console.listen),
            "console.users-file",
            "no way to sign in: set users-file (local users) or proxy-header (single sign-on)",
        );
    }
    if !problems.list.is_empty() {
        let mut list = problems.list;
        list.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        return Err(ConfigError {
            path: path.to_path_buf(),
            problems: list,
        });
    }
    let listen = listen.ok_or_else(|| fail(None, "console.listen", "missing".into()))?;
    Ok(ConsoleConfig {
        fleet: FleetConfig {
            url,
            station_id: String::new(),
            password,
            tls,
            poll: Duration::from_secs(2),
        },
        listen,
        users,
        proxy,
        secure_cookies: raw.console.secure_cookies.unwrap_or(true),
        loan_hours: raw.console.loan_hours.unwrap_or(12),
        lost_after_hours: raw.console.lost_after_hours.unwrap_or(48),
    })
}
