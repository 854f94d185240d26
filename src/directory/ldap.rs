//! The `ldap` directory: Active Directory or OpenLDAP through `ldap3` (async, on tokio).
//!
//! A badge is resolved by a subtree search `(badge-attribute=<badge>)` under `base-dn`,
//! bound as the service account. The badge is escaped per RFC 4515 so `*`, `(`, `)`, `\`
//! and NUL in a badge are compared literally, never read as filter syntax. Exactly one
//! entry is a user; none is unknown; several is a directory error the operator must fix.
//!
//! One connection is kept and reused (Active Directory closes idle ones after 15 minutes by
//! default, so a failure on a reused connection is retried once on a fresh one). Answers
//! are cached per [`crate::directory::cache`]; the connection is opened lazily so the daemon
//! starts while the server is down. The password is only ever passed to the bind call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use rustls_ldap::{ClientConfig, RootCertStore};

use crate::badges::Resolution;
use crate::config::LdapConfig;
use crate::directory::cache::{resolve_cached, Answer, AnswerCache, Failure, Health};
use crate::directory::DirectoryError;
use crate::domain::{BadgeNumber, User, Username};

/// LDAP result code 4: the server stopped returning entries at its size limit.
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
/// LDAP result code 32: the search base does not exist.
const RC_NO_SUCH_OBJECT: u32 = 32;
/// LDAP result code 49: wrong bind DN or password.
const RC_INVALID_CREDENTIALS: u32 = 49;
/// LDAP result code 50: the bound account may not read what was asked.
const RC_INSUFFICIENT_ACCESS: u32 = 50;

/// The LDAP directory.
pub(crate) struct LdapDirectory {
    config: LdapConfig,
    /// The URL as shown in messages (no user-info).
    shown_url: String,
    timeout: Duration,
    /// The rustls configuration with the extra CA, when one is configured.
    tls: Option<Arc<ClientConfig>>,
    /// The connection kept between requests. `Ldap` is a cheap handle onto it.
    connection: Mutex<Option<Ldap>>,
    cache: AnswerCache,
    health: Health,
    /// Set at open when the configuration itself is risky (password in clear text).
    config_warning: Option<String>,
}

/// What a search returned.
struct Found {
    entries: Vec<SearchEntry>,
    /// The server stopped at a size limit, so there are more entries than `entries`.
    truncated: bool,
}

impl LdapDirectory {
    /// Checks the configuration and reads the CA file; does not contact the server.
    pub(crate) fn open(config: &LdapConfig) -> Result<LdapDirectory, DirectoryError> {
        let url = reqwest::Url::parse(&config.url).map_err(|err| DirectoryError::Config {
            reason: format!(
                "directory.url {:?} is not a URL ({err}): write ldaps://host or ldap://host",
                config.url
            ),
        })?;
        let scheme = url.scheme().to_string();
        if scheme != "ldap" && scheme != "ldaps" {
            return Err(DirectoryError::Config {
                reason: format!(
                    "directory.url must start with ldap:// or ldaps://, not {scheme}://"
                ),
            });
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(DirectoryError::Config {
                reason: "directory.url has no host: write ldaps://dc1.hospital.example".into(),
            });
        }
        if scheme == "ldaps" && config.starttls {
            return Err(DirectoryError::Config {
                reason: "directory.starttls applies to ldap:// URLs; ldaps:// is already encrypted: remove starttls or use ldap://".into(),
            });
        }
        let shown_url = shown_url(&url);
        let tls = match &config.ca_file {
            Some(path) => Some(Arc::new(tls_config(path)?)),
            None => None,
        };
        let config_warning = (scheme == "ldap" && !config.starttls && config.bind_password.is_some()).then(|| {
            format!(
                "{shown_url} sends the service account's password unencrypted: use ldaps:// or starttls = true"
            )
        });
        if let Some(warning) = &config_warning {
            tracing::warn!(warning = %warning, "LDAP directory configuration");
        }
        Ok(LdapDirectory {
            config: config.clone(),
            shown_url,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            tls,
            connection: Mutex::new(None),
            cache: AnswerCache::new(config.cache_ttl_seconds),
            health: Health::default(),
            config_warning,
        })
    }

    /// Resolves a badge: cache, then server, then stale cache.
    pub(crate) async fn lookup(&self, badge: &BadgeNumber) -> Resolution {
        resolve_cached(&self.cache, &self.health, badge, || self.fetch_badge(badge)).await
    }

    /// The user whose username attribute equals `username`, asked of the server (not cached:
    /// enrolment is rare and must see the directory as it is now).
    pub(crate) async fn find_user(
        &self,
        username: &Username,
    ) -> Result<Option<User>, DirectoryError> {
        let filter = format!(
            "({}={})",
            self.config.username_attribute,
            ldap3::ldap_escape(username.as_str())
        );
        let found = self
            .search(&filter)
            .await
            .map_err(|failure| match failure {
                Failure::Unreachable(reason) | Failure::Conflict(reason) => {
                    DirectoryError::Unavailable { reason }
                }
            })?;
        let n_entries = found.entries.len();
        if n_entries > 1 || found.truncated {
            return Err(DirectoryError::AmbiguousUser {
                username: username.clone(),
                count: n_entries,
            });
        }
        match found.entries.into_iter().next() {
            Some(entry) => self
                .user_from_entry(entry)
                .map(Some)
                .map_err(|reason| DirectoryError::Unavailable { reason }),
            None => Ok(None),
        }
    }

    /// One line for status screens; no secrets.
    pub(crate) fn describe(&self) -> String {
        let tls = if self.shown_url.starts_with("ldaps://") {
            "TLS"
        } else if self.config.starttls {
            "StartTLS"
        } else {
            "no TLS"
        };
        format!(
            "ldap {} ({tls}{}), base {:?}, badge attribute {}, cache {} s ({} answers)",
            self.shown_url,
            if self.tls.is_some() { ", extra CA" } else { "" },
            self.config.base_dn,
            self.config.badge_attribute,
            self.cache.ttl().as_secs(),
            self.cache.len()
        )
    }

    /// The configuration warning and the last failure, if any.
    pub(crate) fn problems(&self) -> Vec<String> {
        self.config_warning
            .iter()
            .cloned()
            .chain(self.health.problem())
            .collect()
    }

    async fn fetch_badge(&self, badge: &BadgeNumber) -> Result<Answer, Failure> {
        let filter = format!(
            "({}={})",
            self.config.badge_attribute,
            ldap3::ldap_escape(badge.expose())
        );
        let found = self.search(&filter).await?;
        let n_entries = found.entries.len();
        if n_entries > 1 || found.truncated {
            let count = if found.truncated {
                format!("more than {n_entries}")
            } else {
                n_entries.to_string()
            };
            return Err(Failure::Conflict(format!(
                "badge found on {count} directory entries: fix the directory"
            )));
        }
        match found.entries.into_iter().next() {
            Some(entry) => self
                .user_from_entry(entry)
                .map(Some)
                .map_err(Failure::Conflict),
            None => Ok(None),
        }
    }

    /// Runs a search on the kept connection, or a fresh one; a failure on a kept
    /// connection is retried once on a fresh one.
    async fn search(&self, filter: &str) -> Result<Found, Failure> {
        let attributes = [
            self.config.username_attribute.as_str(),
            self.config.display_name_attribute.as_str(),
            self.config.group_attribute.as_str(),
        ];
        let kept = self.take_connection();
        let reused = kept.is_some();
        let mut ldap = match kept {
            Some(ldap) => ldap,
            None => self.connect().await?,
        };
        let mut outcome = self.search_on(&mut ldap, filter, &attributes).await;
        if reused && matches!(outcome, Err(SearchError::Connection(_))) {
            tracing::debug!(url = %self.shown_url, "kept LDAP connection failed; reconnecting");
            ldap = self.connect().await?;
            outcome = self.search_on(&mut ldap, filter, &attributes).await;
        }
        match outcome {
            Ok(found) => {
                self.keep_connection(ldap);
                Ok(found)
            }
            Err(SearchError::Connection(reason)) => Err(Failure::Unreachable(reason)),
            Err(SearchError::Result(reason)) => {
                // The server answered: the connection is healthy.
                self.keep_connection(ldap);
                Err(Failure::Unreachable(reason))
            }
        }
    }

    async fn search_on(
        &self,
        ldap: &mut Ldap,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Found, SearchError> {
        let request = ldap.with_timeout(self.timeout).search(
            &self.config.base_dn,
            Scope::Subtree,
            filter,
            attributes.to_vec(),
        );
        let result = match tokio::time::timeout(self.timeout, request).await {
            Err(_elapsed) => return Err(SearchError::Connection(self.no_answer())),
            Ok(Err(err)) => return Err(SearchError::Connection(self.connection_failure(&err))),
            Ok(Ok(result)) => result,
        };
        let ldap3::SearchResult(entries, status) = result;
        let truncated = status.rc == RC_SIZE_LIMIT_EXCEEDED;
        if status.rc != 0 && !truncated {
            return Err(SearchError::Result(
                self.result_failure(status.rc, &status.text),
            ));
        }
        Ok(Found {
            entries: entries.into_iter().map(SearchEntry::construct).collect(),
            truncated,
        })
    }

    async fn connect(&self) -> Result<Ldap, Failure> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.config.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(Arc::clone(tls));
        }
        let connecting = LdapConnAsync::with_settings(settings, &self.config.url);
        let (connection, mut ldap) = match tokio::time::timeout(self.timeout, connecting).await {
            Err(_elapsed) => return Err(Failure::Unreachable(self.no_answer())),
            Ok(Err(err)) => return Err(Failure::Unreachable(self.connection_failure(&err))),
            Ok(Ok(pair)) => pair,
        };
        ldap3::drive!(connection);
        if let (Some(bind_dn), Some(password)) = (&self.config.bind_dn, &self.config.bind_password)
        {
            let binding = ldap
                .with_timeout(self.timeout)
                .simple_bind(bind_dn, password.expose());
            match tokio::time::timeout(self.timeout, binding).await {
                Err(_elapsed) => return Err(Failure::Unreachable(self.no_answer())),
                Ok(Err(err)) => return Err(Failure::Unreachable(self.connection_failure(&err))),
                Ok(Ok(status)) if status.rc == 0 => {}
                Ok(Ok(status)) if status.rc == RC_INVALID_CREDENTIALS => {
                    return Err(Failure::Unreachable(format!(
                        "{} refused the service account's bind (invalid credentials): check bind-dn and the password in bind-password-file",
                        self.shown_url
                    )))
                }
                Ok(Ok(status)) => {
                    return Err(Failure::Unreachable(format!(
                        "{} refused the service account's bind (LDAP result {}{}): check bind-dn",
                        self.shown_url,
                        status.rc,
                        server_text(&status.text)
                    )))
                }
            }
        }
        Ok(ldap)
    }

    fn user_from_entry(&self, entry: SearchEntry) -> Result<User, String> {
        let values = |name: &str| -> Vec<String> {
            entry
                .attrs
                .iter()
                .find(|(attribute, _)| attribute.eq_ignore_ascii_case(name))
                .map(|(_, values)| values.clone())
                .unwrap_or_default()
        };
        let Some(username) = values(&self.config.username_attribute)
            .into_iter()
            .map(|value| value.trim().to_string())
            .find(|value| !value.is_empty())
        else {
            return Err(format!(
                "directory entry {:?} has no {}: fix the directory or set username-attribute",
                entry.dn, self.config.username_attribute
            ));
        };
        let display_name = values(&self.config.display_name_attribute)
            .into_iter()
            .map(|value| value.trim().to_string())
            .find(|value| !value.is_empty())
            .unwrap_or_else(|| username.clone());
        let groups = values(&self.config.group_attribute);
        let enroller = self
            .config
            .enroller_group
            .as_deref()
            .is_some_and(|wanted| groups.iter().any(|group| group_matches(group, wanted)));
        Ok(User {
            username: Username::new(username),
            display_name,
            groups,
            enroller,
        })
    }

    fn take_connection(&self) -> Option<Ldap> {
        let mut kept = self.lock_connection();
        let closed = kept.as_mut().is_some_and(Ldap::is_closed);
        if closed {
            *kept = None;
        }
        kept.clone()
    }

    fn keep_connection(&self, ldap: Ldap) {
        *self.lock_connection() = Some(ldap);
    }

    fn lock_connection(&self) -> std::sync::MutexGuard<'_, Option<Ldap>> {
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn no_answer(&self) -> String {
        format!(
            "no answer from {} within {} ms: check the server and the network, or raise directory.timeout-ms",
            self.shown_url,
            self.timeout.as_millis()
        )
    }

    fn connection_failure(&self, err: &LdapError) -> String {
        if matches!(err, LdapError::Timeout { .. }) {
            return self.no_answer();
        }
        let text = err.to_string();
        let lowered = text.to_ascii_lowercase();
        if lowered.contains("certificate") || lowered.contains("unknownissuer") {
            format!(
                "cannot connect to {}: the server's TLS certificate is not trusted ({text}): set directory.ca-file to the CA that issued it",
                self.shown_url
            )
        } else if lowered.contains("tls") || lowered.contains("handshake") {
            format!("cannot connect to {}: TLS failed ({text})", self.shown_url)
        } else {
            format!("cannot connect to {}: {text}", self.shown_url)
        }
    }

    fn result_failure(&self, rc: u32, text: &str) -> String {
        match rc {
            RC_NO_SUCH_OBJECT => format!(
                "{}: the search base {:?} does not exist: check directory.base-dn",
                self.shown_url, self.config.base_dn
            ),
            RC_INSUFFICIENT_ACCESS if self.config.bind_dn.is_none() => format!(
                "{}: anonymous searches of {:?} are refused: set directory.bind-dn to a service account",
                self.shown_url, self.config.base_dn
            ),
            RC_INSUFFICIENT_ACCESS => format!(
                "{}: the service account may not search {:?}: grant it read access",
                self.shown_url, self.config.base_dn
            ),
            _ => format!(
                "{}: search failed (LDAP result {rc}{})",
                self.shown_url,
                server_text(text)
            ),
        }
    }
}

enum SearchError {
    /// The connection failed or timed out: try a fresh one.
    Connection(String),
    /// The server answered with an error code.
    Result(String),
}

fn server_text(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// A group value matches the configured enroller group when equal ignoring ASCII case,
/// or when its first RDN's value is (so `enroller-group = "Badge Enrollers"` matches
/// `CN=Badge Enrollers,OU=Groups,DC=hospital,DC=example`).
fn group_matches(group: &str, wanted: &str) -> bool {
    if group.trim().eq_ignore_ascii_case(wanted.trim()) {
        return true;
    }
    let first_rdn = group.split(',').next().unwrap_or("");
    match first_rdn.split_once('=') {
        Some((_, value)) => value.trim().eq_ignore_ascii_case(wanted.trim()),
        None => false,
    }
}

fn shown_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string().trim_end_matches('/').to_string()
}

/// The system's trust anchors plus the certificates in `ca_file`.
fn tls_config(ca_file: &std::path::Path) -> Result<ClientConfig, DirectoryError> {
    let ca_error = |reason: String| DirectoryError::CaFile {
        path: ca_file.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(ca_file).map_err(|err| ca_error(format!("cannot read it: {err}")))?;
    let extra = rustls_pemfile_ldap::certs(&mut pem.as_slice())
        .map_err(|err| ca_error(format!("is not PEM: {err}")))?;
    if extra.is_empty() {
        return Err(ca_error(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let mut roots = RootCertStore::empty();
    let (_, n_rejected) = roots.add_parsable_certificates(&extra);
    if n_rejected > 0 {
        return Err(ca_error(format!(
            "{n_rejected} certificate(s) in it cannot be used as a trust anchor"
        )));
    }
    // The system store may be missing on a minimal install; the extra CA alone then works.
    if let Ok(system) = rustls_native_certs_ldap::load_native_certs() {
        let system: Vec<Vec<u8>> = system.into_iter().map(|cert| cert.0).collect();
        roots.add_parsable_certificates(&system);
    }
    Ok(ClientConfig::builder()
        .with_safe_defaults()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped_per_rfc_4515() {
        assert_eq!(ldap3::ldap_escape("7*(x)\\\0"), "7\\2a\\28x\\29\\5c\\00");
        assert_eq!(ldap3::ldap_escape("DEADBEEF"), "DEADBEEF");
    }

    #[test]
    fn enroller_group_matches_whole_value_or_first_rdn() {
        assert!(group_matches(
            "CN=Badge Enrollers,OU=Groups,DC=x",
            "badge enrollers"
        ));
        assert!(group_matches("enrollers", "Enrollers"));
        assert!(!group_matches(
            "CN=Nurses,OU=Badge Enrollers,DC=x",
            "Badge Enrollers"
        ));
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        let url = reqwest::Url::parse("ldaps://svc:pw@dc1.example:636").expect("valid URL");
        assert_eq!(shown_url(&url), "ldaps://dc1.example:636");
    }
}
