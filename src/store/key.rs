//! The station key and the files of the state folder, private from creation.
//!
//! Badge numbers are kept at rest only as HMAC-SHA256 under a key of 32 random bytes in
//! `station.key` beside the database, created on first start with mode 0600 (readable
//! by the service alone). A copied database or backup therefore yields no badge number:
//! looking one up needs the badge and the key.
//!
//! Every file and folder here is created with its final mode in the `open`/`mkdir` call
//! itself (never widened later, never left to the umask): the folder 0750, the key,
//! database and lock 0600. SQLite gives the WAL and SHM files the database's mode.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::BadgeNumber;
use crate::store::StoreError;

/// The key file inside the state folder.
pub const KEY_FILE: &str = "station.key";

/// Mode of the state folder.
pub const DIR_MODE: u32 = 0o750;
/// Mode of the key, the database (and so its WAL and SHM) and the lock file.
pub const FILE_MODE: u32 = 0o600;

/// The station's badge key. Never printed.
#[derive(Clone)]
pub struct BadgeKey([u8; 32]);

impl std::fmt::Debug for BadgeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BadgeKey(…)")
    }
}

impl BadgeKey {
    /// Reads `station.key` from `state_dir`, creating it (0600, owned like the folder)
    /// when missing.
    pub fn load_or_create(state_dir: &Path) -> Result<BadgeKey, StoreError> {
        let path = state_dir.join(KEY_FILE);
        let key_error = |message: String| StoreError::Key {
            path: path.clone(),
            message,
        };
        match std::fs::File::open(&path) {
            Ok(mut file) => {
                let mut text = String::new();
                file.read_to_string(&mut text)
                    .map_err(|err| key_error(format!("cannot read it: {err}")))?;
                BadgeKey::from_hex(text.trim()).ok_or_else(|| {
                    key_error("it is not 64 hex digits: restore it from the backup of this station's key (a new key would orphan every local badge)".into())
                })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                BadgeKey::create(state_dir, &path)
            }
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => Err(key_error(
                "it is readable by the badgedock service alone: run this command as root or as user badgedock (sudo -u badgedock …)".into(),
            )),
            Err(err) => Err(key_error(format!("cannot open it: {err}"))),
        }
    }

    fn create(state_dir: &Path, path: &Path) -> Result<BadgeKey, StoreError> {
        let key_error = |message: String| StoreError::Key {
            path: path.to_path_buf(),
            message,
        };
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|err| key_error(format!("no randomness for a new key: {err}")))?;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path);
        let mut file = match created {
            Ok(file) => file,
            // Another process created it first: use theirs.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                return BadgeKey::load_or_create(state_dir)
            }
            Err(err) => return Err(key_error(format!("cannot create it: {err}"))),
        };
        let key = BadgeKey(bytes);
        file.write_all(format!("{}\n", key.to_hex()).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|err| key_error(format!("cannot write it: {err}")))?;
        give_to_folder_owner(state_dir, path);
        tracing::info!(path = %path.display(), "station key created");
        Ok(key)
    }

    fn from_hex(text: &str) -> Option<BadgeKey> {
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
        }
        Some(BadgeKey(bytes))
    }

    fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The keyed hash a badge number is stored and looked up by (64 hex digits).
    pub fn hash(&self, number: &BadgeNumber) -> String {
        self.hash_text(number.expose())
    }

    pub(crate) fn hash_text(&self, number: &str) -> String {
        #[allow(clippy::expect_used)]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(number.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Creates `dir` (and missing parents) with mode 0750 (less if the umask says so).
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Creates the database file 0600 before SQLite does (SQLite would create it 0644 less
/// the umask); its WAL and SHM files then get the same mode.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => {
            if let Some(dir) = path.parent() {
                give_to_folder_owner(dir, path);
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// Opens (creating 0600) the state folder's lock file.
pub fn open_lock_file(state_dir: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    let path = state_dir.join("badgedock.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(&path)?;
    Ok((file, path))
}

/// When root creates a file in a folder that belongs to the service (a CLI command run
/// with sudo), the file is given to the folder's owner so the service can still use it.
fn give_to_folder_owner(dir: &Path, path: &Path) {
    if !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let Ok(metadata) = std::fs::metadata(dir) else {
        return;
    };
    if metadata.uid() == 0 {
        return;
    }
    let owner = nix::unistd::Uid::from_raw(metadata.uid());
    let group = nix::unistd::Gid::from_raw(metadata.gid());
    if let Err(err) = nix::unistd::chown(path, Some(owner), Some(group)) {
        tracing::warn!(path = %path.display(), cause = %err, "cannot give the file to the state folder's owner");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_and_hashes_differ_per_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = BadgeKey::load_or_create(dir.path()).expect("create");
        let again = BadgeKey::load_or_create(dir.path()).expect("load");
        let badge = BadgeNumber::new("04A1B2C3D4");
        assert_eq!(first.hash(&badge), again.hash(&badge));
        assert_eq!(first.hash(&badge).len(), 64);
        let other = tempfile::tempdir().expect("tempdir");
        let other_key = BadgeKey::load_or_create(other.path()).expect("create");
        assert_ne!(first.hash(&badge), other_key.hash(&badge));
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("stat")
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
