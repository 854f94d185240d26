//! The `file` directory: a CSV of badges kept next to the config, reloaded when it changes.
//!
//! The file is `badge,username,display-name[,groups][,roles]` with a header line; groups
//! are `;`-separated, and the role `enroller` lets a badge approve enrolments. Columns are
//! found by their header name, so their order is free.
//!
//! Reload strategy: every lookup first `stat`s the file (on a blocking thread, as the
//! lookup itself) and re-reads it only when its size, modification time or inode changed.
//! This was chosen over a polling task because an edit takes effect at the very next tap
//! (no polling window), there is no background task whose lifetime the daemon must manage,
//! and the same code serves the CLI (`check-config`, `badges import`) without a runtime. A
//! stat costs microseconds; the file is read only when it changed.
//!
//! A bad row is reported with its line number and skipped; the other rows stay in force.
//! A file that cannot be read, or whose header is unusable (for example while an editor
//! has truncated it), keeps the last good table in force and is reported as a problem.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::badges::Resolution;
use crate::directory::DirectoryError;
use crate::domain::{BadgeNumber, User, Username};

/// One usable row of a badge CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadgeRow {
    /// 1-based line of the row in the file.
    pub line: usize,
    /// The badge number, trimmed, compared exactly (hex written in lower case is
    /// normalised to upper case, as readers render it).
    pub badge: BadgeNumber,
    /// Who holds it.
    pub user: User,
    /// True when the file wrote the badge in lower-case hex and it was normalised.
    pub normalised: bool,
}

/// The longest field (badge, username, display name, groups, roles) a badge file may
/// hold, in characters. A longer one is refused with its line.
pub const MAX_FIELD_CHARS: usize = 1024;

/// Reads a badge file, refusing one larger than `max_bytes` (`directory.max-file-bytes`)
/// before reading it, so a runaway file cannot exhaust memory.
pub fn read_badge_file(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {max_bytes} bytes: split it, or raise directory.max-file-bytes"),
        )
    };
    if file.metadata()?.len() > max_bytes {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    // The file may grow between the stat and the read: never read past the limit.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(bytes)
}

/// A row (or the header) that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file.
    pub line: usize,
    /// What is wrong and what to do; never contains a badge number.
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses badge CSV text into usable rows and the problems of the others.
///
/// An unusable header yields no rows and one error for line 1. A badge that appears on
/// two rows is kept from the first and reported on the second. Used by the `file`
/// directory and by `badgedock badges import FILE.csv`.
pub fn parse_badge_csv(text: &str) -> (Vec<BadgeRow>, Vec<RowError>) {
    match parse(text) {
        Ok((rows, errors)) => (rows, errors),
        Err(header_error) => (Vec::new(), vec![header_error]),
    }
}

const HEADER_HELP: &str =
    "the first line must be the header badge,username,display-name (optionally groups and roles)";

#[derive(Default)]
struct Columns {
    badge: Option<usize>,
    username: Option<usize>,
    display_name: Option<usize>,
    groups: Option<usize>,
    roles: Option<usize>,
}

/// Like [`parse_badge_csv`], but an unusable header is an `Err` so the directory can keep
/// its last good table instead of applying an empty one (`check-config` refuses it).
pub fn parse_badge_csv_strict(text: &str) -> Result<(Vec<BadgeRow>, Vec<RowError>), RowError> {
    parse(text)
}

fn parse(text: &str) -> Result<(Vec<BadgeRow>, Vec<RowError>), RowError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(err) => {
            return Err(RowError {
                line: err
                    .position()
                    .map_or(1, |p| LineCursor::default().line_at(text, p.byte())),
                message: format!("cannot read the header ({err}): {HEADER_HELP}"),
            })
        }
    };
    if headers.iter().all(str::is_empty) {
        return Err(RowError {
            line: 1,
            message: format!("the file is empty: {HEADER_HELP}"),
        });
    }
    let header_line = first_content_line(text);
    let mut columns = Columns::default();
    let mut errors = Vec::new();
    for (index, name) in headers.iter().enumerate() {
        let normalized: String = name
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        let slot = match normalized.as_str() {
            "badge" => &mut columns.badge,
            "username" => &mut columns.username,
            "displayname" => &mut columns.display_name,
            "groups" => &mut columns.groups,
            "roles" => &mut columns.roles,
            _ => {
                errors.push(RowError {
                    line: header_line,
                    message: format!(
                        "column {name:?} is not used (the columns are badge, username, display-name, groups, roles)"
                    ),
                });
                continue;
            }
        };
        if slot.is_some() {
            return Err(RowError {
                line: header_line,
                message: format!("column {name:?} appears twice: {HEADER_HELP}"),
            });
        }
        *slot = Some(index);
    }
    let (Some(badge_col), Some(username_col), Some(display_col)) =
        (columns.badge, columns.username, columns.display_name)
    else {
        let hint = if headers.len() == 1 && headers.iter().any(|h| h.contains(';')) {
            "; the file seems to use ';' between columns: save it comma-separated"
        } else {
            ""
        };
        return Err(RowError {
            line: header_line,
            message: format!(
                "the header lacks badge, username or display-name: {HEADER_HELP}{hint}"
            ),
        });
    };

    let mut cursor = LineCursor::default();
    let mut rows: Vec<BadgeRow> = Vec::new();
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                errors.push(RowError {
                    line: err.position().map_or(0, |p| cursor.line_at(text, p.byte())),
                    message: format!(
                        "cannot be read as CSV ({}); the row is ignored",
                        csv_error_kind(&err)
                    ),
                });
                continue;
            }
        };
        let line = record
            .position()
            .map_or(0, |p| cursor.line_at(text, p.byte()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |col: Option<usize>| col.and_then(|col| record.get(col)).unwrap_or("");
        match parse_row(
            field(Some(badge_col)),
            field(Some(username_col)),
            field(Some(display_col)),
            field(columns.groups),
            field(columns.roles),
        ) {
            Ok((badge, user, normalised)) => {
                if let Some(first) = first_line_of.get(badge.expose()) {
                    errors.push(RowError {
                        line,
                        message: format!(
                            "this badge is already on line {first}; the row is ignored"
                        ),
                    });
                    continue;
                }
                first_line_of.insert(badge.expose().to_string(), line);
                rows.push(BadgeRow {
                    line,
                    badge,
                    user,
                    normalised,
                });
            }
            Err(message) => errors.push(RowError {
                line,
                message: format!("{message}; the row is ignored"),
            }),
        }
    }
    Ok((rows, errors))
}

fn parse_row(
    badge: &str,
    username: &str,
    display_name: &str,
    groups: &str,
    roles: &str,
) -> Result<(BadgeNumber, User, bool), String> {
    let all = [badge, username, display_name, groups, roles];
    if all.iter().any(|f| f.contains('\u{fffd}')) {
        return Err("is not UTF-8 text: save the file as UTF-8".into());
    }
    if let Some(long) = all.iter().position(|f| f.chars().count() > MAX_FIELD_CHARS) {
        let name = ["badge", "username", "display-name", "groups", "roles"][long];
        return Err(format!(
            "the {name} field is longer than {MAX_FIELD_CHARS} characters"
        ));
    }
    if badge.is_empty() {
        return Err("the badge is empty".into());
    }
    if badge.chars().any(char::is_control) {
        return Err("the badge contains control characters".into());
    }
    if username.is_empty() {
        return Err("the username is empty".into());
    }
    if username
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "the username {username:?} contains spaces or control characters"
        ));
    }
    let mut enroller = false;
    for role in roles.split(';').map(str::trim).filter(|r| !r.is_empty()) {
        if role.eq_ignore_ascii_case("enroller") {
            enroller = true;
        } else {
            return Err(format!(
                "role {role:?} is not known (the only role is enroller)"
            ));
        }
    }
    let user = User {
        username: Username::new(username),
        display_name: if display_name.is_empty() {
            username.to_string()
        } else {
            display_name.to_string()
        },
        groups: groups
            .split(';')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
        enroller,
    };
    match crate::config::normalise_badge(badge) {
        Some(upper) => Ok((BadgeNumber::new(upper), user, true)),
        None => Ok((BadgeNumber::new(badge), user, false)),
    }
}

/// The csv crate's error text can quote the record; keep only its kind so a badge number
/// never reaches a log line.
fn csv_error_kind(err: &csv::Error) -> &'static str {
    match err.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text",
        csv::ErrorKind::UnequalLengths { .. } => "wrong number of fields",
        _ => "malformed CSV",
    }
}

/// Turns the csv crate's byte offsets into 1-based line numbers, counting newlines
/// only between successive offsets (records come in order), so a whole file costs one
/// pass. The csv crate's own line count skips blank lines, so it is not used.
#[derive(Default)]
struct LineCursor {
    /// Bytes already counted.
    offset: usize,
    /// Newlines in `text[..offset]`.
    newlines: usize,
}

impl LineCursor {
    /// The line where the record read from byte `offset` starts. The offset can point at
    /// blank or comment lines the reader skipped before the record; those are stepped over.
    fn line_at(&mut self, text: &str, offset: u64) -> usize {
        let bytes = text.as_bytes();
        let mut offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        loop {
            let rest = &bytes[offset..];
            let line_len = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |at| at + 1);
            let content = rest[..line_len].iter().find(|b| !b.is_ascii_whitespace());
            let more_follows = offset + line_len < bytes.len();
            match content {
                None if line_len > 0 && more_follows => offset += line_len,
                Some(b'#') if more_follows => offset += line_len,
                _ => break,
            }
        }
        if offset < self.offset {
            *self = LineCursor::default();
        }
        self.newlines += bytes[self.offset..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = offset;
        self.newlines + 1
    }
}

fn first_content_line(text: &str) -> usize {
    text.lines()
        .position(|line| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map_or(1, |index| index + 1)
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    device: u64,
}

impl Signature {
    fn of(metadata: &std::fs::Metadata) -> Signature {
        Signature {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode: metadata.ino(),
            device: metadata.dev(),
        }
    }
}

struct FileState {
    /// Badge number (exact, trimmed) to user.
    table: HashMap<String, User>,
    /// The version the table (or the last unusable header) came from.
    seen: Option<Signature>,
    /// Row problems of the table in force.
    row_problems: Vec<RowError>,
    /// Why the current file is not in force, when it is not.
    file_problem: Option<String>,
    /// True once a table was loaded (possibly empty of good rows).
    loaded: bool,
}

/// The CSV directory. Cheap to share: lookups lock it briefly on a blocking thread.
pub(crate) struct FileDirectory {
    path: PathBuf,
    max_bytes: u64,
    state: Mutex<FileState>,
}

impl FileDirectory {
    /// Loads the file; fails when it cannot be read or its header is unusable, because a
    /// station must not start with nobody known.
    pub(crate) fn open(path: &Path, max_bytes: u64) -> Result<FileDirectory, DirectoryError> {
        let directory = FileDirectory {
            path: path.to_path_buf(),
            max_bytes,
            state: Mutex::new(FileState {
                table: HashMap::new(),
                seen: None,
                row_problems: Vec::new(),
                file_problem: None,
                loaded: false,
            }),
        };
        {
            let mut state = directory.lock();
            directory.refresh(&mut state);
            if let Some(reason) = state.file_problem.clone() {
                return Err(DirectoryError::File {
                    path: path.to_path_buf(),
                    reason,
                });
            }
        }
        Ok(directory)
    }

    /// Resolves a badge, reloading the file first if it changed. Blocking (stat, maybe a
    /// read): call it from a blocking thread.
    pub(crate) fn lookup_blocking(&self, badge: &str) -> Resolution {
        let mut state = self.lock();
        self.refresh(&mut state);
        match state.table.get(badge.trim()) {
            Some(user) => Resolution::Known { user: user.clone() },
            None => Resolution::Unknown,
        }
    }

    /// The first row's user with this username, reloading the file first if it changed.
    pub(crate) fn find_user_blocking(&self, username: &Username) -> Option<User> {
        let mut state = self.lock();
        self.refresh(&mut state);
        state
            .table
            .values()
            .find(|user| &user.username == username)
            .cloned()
    }

    /// Current problems, each naming the file, reloading the file first if it changed.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut state = self.lock();
        self.refresh(&mut state);
        let path = self.path.display();
        state
            .file_problem
            .iter()
            .map(|problem| format!("{path}: {problem}"))
            .chain(
                state
                    .row_problems
                    .iter()
                    .map(|problem| format!("{path}: {problem}")),
            )
            .collect()
    }

    /// One line for status screens.
    pub(crate) fn describe(&self) -> String {
        let state = self.lock();
        let n_problems = state.row_problems.len() + usize::from(state.file_problem.is_some());
        format!(
            "file {} ({} badges, {} problem{})",
            self.path.display(),
            state.table.len(),
            n_problems,
            if n_problems == 1 { "" } else { "s" }
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        // Every update below replaces whole fields, so a poisoned lock holds a consistent
        // (if older) table and is still safe to serve.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refresh(&self, state: &mut FileState) {
        let metadata = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(err) => return self.keep_last(state, format!("cannot read the file: {err}")),
        };
        let signature = Signature::of(&metadata);
        if state.seen == Some(signature) {
            return;
        }
        // Stat before read: if the file changes in between, the next stat differs from the
        // recorded signature and the file is read again.
        let bytes = match read_badge_file(&self.path, self.max_bytes) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::InvalidData => {
                return self.keep_last(state, err.to_string())
            }
            Err(err) => return self.keep_last(state, format!("cannot read the file: {err}")),
        };
        state.seen = Some(signature);
        let text = String::from_utf8_lossy(&bytes);
        match parse(&text) {
            Ok((rows, row_problems)) => {
                for problem in &row_problems {
                    tracing::warn!(
                        path = %self.path.display(),
                        line = problem.line,
                        problem = %problem.message,
                        "bad row in the badge file"
                    );
                }
                state.table = rows
                    .into_iter()
                    .map(|row| (row.badge.expose().to_string(), row.user))
                    .collect();
                state.row_problems = row_problems;
                state.file_problem = None;
                state.loaded = true;
                tracing::info!(
                    path = %self.path.display(),
                    badges = state.table.len(),
                    problems = state.row_problems.len(),
                    "badge file loaded"
                );
            }
            Err(header_problem) => self.keep_last(state, header_problem.to_string()),
        }
    }

    fn keep_last(&self, state: &mut FileState, problem: String) {
        let problem = if state.loaded {
            format!(
                "{problem}; still using the {} badges loaded before",
                state.table.len()
            )
        } else {
            problem
        };
        if state.file_problem.as_deref() != Some(problem.as_str()) {
            tracing::warn!(path = %self.path.display(), problem = %problem, "badge file not loaded");
        }
        state.file_problem = Some(problem);
    }
}

/// Runs a blocking file-directory call off the async runtime's threads.
pub(crate) async fn off_runtime<T: Send + 'static>(
    directory: &Arc<FileDirectory>,
    call: impl FnOnce(&FileDirectory) -> T + Send + 'static,
) -> Result<T, String> {
    let directory = Arc::clone(directory);
    tokio::task::spawn_blocking(move || call(&directory))
        .await
        .map_err(|err| format!("the badge file lookup did not finish: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_groups_roles_and_bad_rows_with_lines() {
        let text = "\u{feff}badge,username,display-name,groups,roles\n\
                    DEADBEEF,alice,Alice Martin,nursing; icu,\n\
                    # a comment line\n\
                    ,bob,Bob,,\n\
                    04A1B2C3D4E5F6 , carol ,Carol,nursing,enroller\n\
                    DEADBEEF,dave,Dave,,\n\
                    0011,erin,Erin,,admin\n\
                    \n\
                    0022,frank,,,\n\
                    \n\
                    # another comment\n\
                    0033,\"gina s\",Gina,,\n";
        let (rows, errors) = parse_badge_csv(text);
        let summary: Vec<(usize, &str, &str, bool)> = rows
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.badge.expose(),
                    r.user.username.as_str(),
                    r.user.enroller,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (2, "DEADBEEF", "alice", false),
                (5, "04A1B2C3D4E5F6", "carol", true),
                (9, "0022", "frank", false),
            ]
        );
        assert_eq!(rows[0].user.groups, vec!["nursing", "icu"]);
        assert_eq!(rows[0].user.display_name, "Alice Martin");
        assert_eq!(
            rows[2].user.display_name, "frank",
            "empty display name falls back"
        );
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 6, 7, 12], "{errors:?}");
        assert!(errors[0].message.contains("badge is empty"));
        assert!(errors[1].message.contains("already on line 2"));
        assert!(errors[2].message.contains("\"admin\""));
        assert!(errors[3].message.contains("spaces"));
        for error in &errors {
            assert!(!error.message.contains("DEADBEEF"), "badge leaked: {error}");
        }
    }

    #[test]
    fn columns_by_name_in_any_order() {
        let text = "Username;x\n";
        let (rows, errors) = parse_badge_csv(text);
        assert!(rows.is_empty());
        assert!(errors[0].message.contains("comma-separated"), "{errors:?}");

        let text = "display_name,Badge,USERNAME,department\nAlice,DEADBEEF,alice,4W\n";
        let (rows, errors) = parse_badge_csv(text);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].user.username.as_str(), "alice");
        assert_eq!(rows[0].badge.expose(), "DEADBEEF");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("\"department\" is not used"));
    }

    #[test]
    fn unusable_headers() {
        for text in [
            "",
            "\n\n",
            "badge,username\n1,a\n",
            "badge,badge,username,display-name\n",
        ] {
            let (rows, errors) = parse_badge_csv(text);
            assert!(rows.is_empty(), "{text:?}");
            assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
            assert!(errors[0].message.contains("header"), "{text:?}: {errors:?}");
            assert!(parse(text).is_err());
        }
    }

    #[test]
    fn short_rows_and_invalid_utf8() {
        let text =
            "badge,username,display-name,groups\n0011,alice\n0022,bob,Bob\n0033,c\u{fffd},C\n";
        let (rows, errors) = parse_badge_csv(text);
        assert_eq!(
            rows.len(),
            2,
            "missing optional and display-name columns are fine"
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 4);
        assert!(errors[0].message.contains("UTF-8"));
    }
}
