//! Badge directories: who holds a badge number, behind one interface over three backends.
//!
//! - `file` ([`file`]): a CSV next to the config, reloaded when it changes.
//! - `ldap` ([`ldap`]): Active Directory or OpenLDAP, searched by a badge attribute.
//! - `http` ([`http`]): an identity web service answering `{"user": "…"}`.
//!
//! [`Directory::lookup`] never blocks the caller's runtime thread (the file backend runs
//! on a blocking thread, the network backends are async) and answers from the cache where
//! allowed; the network backends serve cached answers while their server is unreachable
//! (see [`cache`]). [`validate_enrollment`] holds the rules for enrolling an unknown badge.
//! The station's [`crate::badges::Policy`] is applied by the caller, on top.

mod cache;
mod enrollment;
mod file;
mod http;
mod ldap;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use enrollment::{validate_enrollment, Enrollment, EnrollmentError, WorkspaceOneMatch};
pub use file::{
    parse_badge_csv, parse_badge_csv_strict, read_badge_file, BadgeRow, RowError, MAX_FIELD_CHARS,
};

use crate::badges::Resolution;
use crate::config::DirectoryConfig;
use crate::domain::{BadgeNumber, User, Username};

/// A badge directory. Cloning is cheap and clones share the cache and connection.
#[derive(Clone)]
pub struct Directory {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    File(Arc<file::FileDirectory>),
    Ldap(Arc<ldap::LdapDirectory>),
    Http(Arc<http::HttpDirectory>),
}

/// Why a directory could not be opened or could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The badge file could not be loaded at start.
    #[error("badge file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The directory settings cannot work.
    #[error("{reason}")]
    Config {
        /// What is wrong and what to do.
        reason: String,
    },
    /// The extra CA file cannot be used.
    #[error("directory.ca-file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory server did not answer.
    #[error("{reason}")]
    Unavailable {
        /// Why, free of secrets and badge numbers.
        reason: String,
    },
    /// Several directory entries carry this username.
    #[error("username {username:?} is on {count} directory entries: fix the directory")]
    AmbiguousUser {
        /// The username searched.
        username: Username,
        /// How many entries carry it.
        count: usize,
    },
    /// The identity web service convention answers badge numbers only.
    #[error("an identity web service cannot look up usernames (it answers badge numbers only)")]
    UserLookupUnsupported,
}

impl Directory {
    /// Opens the configured directory. The file backend loads its file now (and fails
    /// if it cannot); the network backends check their settings and CA file but do not
    /// contact the server, so the station starts while the server is down.
    pub fn open(config: &DirectoryConfig) -> Result<Directory, DirectoryError> {
        Directory::open_limited(config, crate::config::DEFAULT_MAX_FILE_BYTES)
    }

    /// [`Directory::open`] with the file backend's size limit (`directory.max-file-bytes`):
    /// a larger badge file is refused with a clear problem and the last good table stays.
    pub fn open_limited(
        config: &DirectoryConfig,
        max_file_bytes: u64,
    ) -> Result<Directory, DirectoryError> {
        let backend = match config {
            DirectoryConfig::File { path } => {
                Backend::File(Arc::new(file::FileDirectory::open(path, max_file_bytes)?))
            }
            DirectoryConfig::Ldap(ldap_config) => {
                Backend::Ldap(Arc::new(ldap::LdapDirectory::open(ldap_config)?))
            }
            DirectoryConfig::Http {
                url,
                timeout_ms,
                cache_ttl_seconds,
                ca_file,
            } => Backend::Http(Arc::new(http::HttpDirectory::open(
                url,
                *timeout_ms,
                *cache_ttl_seconds,
                ca_file.as_deref(),
            )?)),
        };
        Ok(Directory { backend })
    }

    /// Who holds `badge`: `Known`, `Unknown`, or `Unavailable` with a reason fit for the
    /// screen. Never `Denied`: the station's policy is applied by the caller.
    pub async fn lookup(&self, badge: &BadgeNumber) -> Resolution {
        match &self.backend {
            Backend::File(directory) => {
                let badge = badge.expose().to_string();
                file::off_runtime(directory, move |directory| {
                    directory.lookup_blocking(&badge)
                })
                .await
                .unwrap_or_else(|reason| Resolution::Unavailable { reason })
            }
            Backend::Ldap(directory) => directory.lookup(badge).await,
            Backend::Http(directory) => directory.lookup(badge).await,
        }
    }

    /// The user with this exact username, for supervised enrolment. Not cached.
    ///
    /// The `http` backend returns [`DirectoryError::UserLookupUnsupported`].
    pub async fn find_user(&self, username: &Username) -> Result<Option<User>, DirectoryError> {
        match &self.backend {
            Backend::File(directory) => {
                let username = username.clone();
                file::off_runtime(directory, move |directory| {
                    directory.find_user_blocking(&username)
                })
                .await
                .map_err(|reason| DirectoryError::Unavailable { reason })
            }
            Backend::Ldap(directory) => directory.find_user(username).await,
            Backend::Http(_) => Err(DirectoryError::UserLookupUnsupported),
        }
    }

    /// One line for the status screen and `check-config`; never contains secrets.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::File(directory) => directory.describe(),
            Backend::Ldap(directory) => directory.describe(),
            Backend::Http(directory) => directory.describe(),
        }
    }

    /// What an operator should fix: bad rows of the badge file (with their line
    /// numbers) or why the file is not in force; for the network backends a risky
    /// setting and the last failure, if the last request failed. Empty when all is well.
    ///
    /// For the file backend this first checks the file (a `stat`, and a reload if it
    /// changed), so it is a cheap blocking call.
    pub fn problems(&self) -> Vec<String> {
        match &self.backend {
            Backend::File(directory) => directory.problems(),
            Backend::Ldap(directory) => directory.problems(),
            Backend::Http(directory) => directory.problems(),
        }
    }

    /// `file`, `ldap` or `http`.
    pub fn kind(&self) -> &'static str {
        match &self.backend {
            Backend::File(_) => "file",
            Backend::Ldap(_) => "ldap",
            Backend::Http(_) => "http",
        }
    }
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Directory").field(&self.describe()).finish()
    }
}
