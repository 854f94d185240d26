//! The checks before an unknown badge is enrolled at the station.
//!
//! Enrolment needs a supervisor: a badge whose user has the enroller role is tapped (the
//! engine keeps that approval window open), then a username is entered. That username
//! must name a user in the directory, and exactly one user in Workspace ONE, whose user
//! search matches substrings (invariant 4 in `DESIGN.md`). The caller performs the
//! Workspace ONE exact-match search and hands over what it found; this module only
//! decides, so the rules are tested without a network.

use std::future::Future;

use crate::directory::{Directory, DirectoryError};
use crate::domain::{User, Username};

/// What Workspace ONE's user search found after keeping only exact `UserName` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceOneMatch {
    /// Exactly one user: its numeric id.
    One {
        /// `Users[].Id.Value`.
        user_id: i64,
    },
    /// No user has this exact username.
    None,
    /// Several users have it (for example a Basic and a Directory account).
    Several {
        /// How many.
        count: usize,
    },
}

/// An enrolment that passed every check: what the store and the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The user the badge will belong to, as the directory spells them.
    pub user: User,
    /// The supervisor who approved it.
    pub approved_by: Username,
    /// The user's Workspace ONE id.
    pub workspace_one_user_id: i64,
}

/// Why an enrolment was refused; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollmentError {
    /// No supervisor approval, or the approving badge lacks the enroller role.
    #[error("enrolling a badge needs a supervisor's approval: a badge with the enroller role must be tapped first")]
    NotApproved,
    /// The directory has no such user.
    #[error("{username:?} is not in the badge directory: check the spelling, or add the user to the directory first")]
    UnknownUsername {
        /// The username as entered.
        username: Username,
    },
    /// Several Workspace ONE users have this exact username.
    #[error("{username:?} matches {count} users in Workspace ONE: remove the duplicate account in the console before enrolling")]
    AmbiguousInWorkspaceOne {
        /// The username checked.
        username: Username,
        /// How many exact matches.
        count: usize,
    },
    /// No Workspace ONE user has this exact username.
    #[error("{username:?} is not a Workspace ONE user: create or sync the user in the console before enrolling")]
    NotInWorkspaceOne {
        /// The username checked.
        username: Username,
    },
    /// The directory could not answer.
    #[error("the directory cannot check the username now ({reason}): try again later")]
    DirectoryUnavailable {
        /// Why.
        reason: String,
    },
    /// Workspace ONE could not answer.
    #[error("Workspace ONE cannot check the username now ({reason}): try again later")]
    WorkspaceOneUnavailable {
        /// Why.
        reason: String,
    },
}

/// Checks an enrolment request.
///
/// `approver` is the user whose tap opened the approval window (`None` when none is
/// open). `workspace_one_lookup` is called, only when the directory check passed, with
/// the username as the directory spells it, and must return the exact-match result (or
/// why Workspace ONE could not answer).
///
/// An identity web service (`http` directory) cannot look up usernames, so for it the
/// Workspace ONE check alone decides, and the user gets the username as display name and
/// no groups.
pub async fn validate_enrollment<F, Fut>(
    directory: &Directory,
    approver: Option<&User>,
    username: &Username,
    workspace_one_lookup: F,
) -> Result<Enrollment, EnrollmentError>
where
    F: FnOnce(Username) -> Fut,
    Fut: Future<Output = Result<WorkspaceOneMatch, String>>,
{
    let approver = match approver {
        Some(approver) if approver.enroller => approver,
        _ => return Err(EnrollmentError::NotApproved),
    };
    let entered = Username::new(username.as_str().trim());
    if entered.as_str().is_empty() {
        return Err(EnrollmentError::UnknownUsername { username: entered });
    }
    let user = match directory.find_user(&entered).await {
        Ok(Some(user)) => user,
        Ok(None) => return Err(EnrollmentError::UnknownUsername { username: entered }),
        Err(DirectoryError::UserLookupUnsupported) => User {
            username: entered.clone(),
            display_name: entered.as_str().to_string(),
            groups: Vec::new(),
            enroller: false,
        },
        Err(err) => {
            return Err(EnrollmentError::DirectoryUnavailable {
                reason: err.to_string(),
            })
        }
    };
    match workspace_one_lookup(user.username.clone()).await {
        Ok(WorkspaceOneMatch::One { user_id }) => Ok(Enrollment {
            user,
            approved_by: approver.username.clone(),
            workspace_one_user_id: user_id,
        }),
        Ok(WorkspaceOneMatch::None) => Err(EnrollmentError::NotInWorkspaceOne {
            username: user.username,
        }),
        Ok(WorkspaceOneMatch::Several { count }) => Err(EnrollmentError::AmbiguousInWorkspaceOne {
            username: user.username,
            count,
        }),
        Err(reason) => Err(EnrollmentError::WorkspaceOneUnavailable { reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DirectoryConfig;
    use std::cell::Cell;

    struct Fixture {
        _dir: tempfile::TempDir,
        directory: Directory,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("badges.csv");
        std::fs::write(
            &path,
            "badge,username,display-name,groups,roles\n\
             5EC0FFEE,sam,Sam Supervisor,nursing,enroller\n\
             DEADBEEF,alice,Alice Martin,nursing,\n\
             0BADC0DE,bob,Bob Twin,nursing,\n",
        )
        .expect("write badges");
        let directory = Directory::open(&DirectoryConfig::File { path }).expect("open");
        Fixture {
            _dir: dir,
            directory,
        }
    }

    async fn approver(directory: &Directory, badge: &str) -> User {
        match directory
            .lookup(&crate::domain::BadgeNumber::new(badge))
            .await
        {
            crate::badges::Resolution::Known { user } => user,
            other => panic!("expected a known user, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn approved_enrolment_of_a_directory_user_known_once_in_workspace_one() {
        let fixture = fixture();
        let sam = approver(&fixture.directory, "5EC0FFEE").await;
        let asked = Cell::new(None);
        let enrollment = validate_enrollment(
            &fixture.directory,
            Some(&sam),
            &Username::new(" alice "),
            |name| {
                asked.set(Some(name));
                async { Ok(WorkspaceOneMatch::One { user_id: 4711 }) }
            },
        )
        .await
        .expect("approved");
        assert_eq!(
            asked.take(),
            Some(Username::new("alice")),
            "Workspace ONE asked with the trimmed name"
        );
        assert_eq!(enrollment.user.display_name, "Alice Martin");
        assert_eq!(enrollment.approved_by, Username::new("sam"));
        assert_eq!(enrollment.workspace_one_user_id, 4711);
    }

    #[tokio::test]
    async fn not_approved_without_an_enroller_tap() {
        let fixture = fixture();
        let alice = approver(&fixture.directory, "DEADBEEF").await;
        let asked = Cell::new(false);
        for approval in [None, Some(&alice)] {
            let result =
                validate_enrollment(&fixture.directory, approval, &Username::new("bob"), |_| {
                    asked.set(true);
                    async { Ok(WorkspaceOneMatch::One { user_id: 1 }) }
                })
                .await;
            assert_eq!(result, Err(EnrollmentError::NotApproved));
        }
        assert!(
            !asked.get(),
            "Workspace ONE must not be asked without approval"
        );
    }

    #[tokio::test]
    async fn unknown_username_is_refused_before_asking_workspace_one() {
        let fixture = fixture();
        let sam = approver(&fixture.directory, "5EC0FFEE").await;
        let asked = Cell::new(false);
        for typed in ["alicia", "  "] {
            let result = validate_enrollment(
                &fixture.directory,
                Some(&sam),
                &Username::new(typed),
                |_| {
                    asked.set(true);
                    async { Ok(WorkspaceOneMatch::One { user_id: 1 }) }
                },
            )
            .await;
            let err = result.expect_err("unknown");
            assert!(
                matches!(err, EnrollmentError::UnknownUsername { .. }),
                "{err}"
            );
            assert!(
                err.to_string().contains("not in the badge directory"),
                "{err}"
            );
        }
        assert!(!asked.get());
    }

    #[tokio::test]
    async fn ambiguous_and_missing_in_workspace_one_are_distinct() {
        let fixture = fixture();
        let sam = approver(&fixture.directory, "5EC0FFEE").await;
        let ambiguous = validate_enrollment(
            &fixture.directory,
            Some(&sam),
            &Username::new("bob"),
            |_| async { Ok(WorkspaceOneMatch::Several { count: 2 }) },
        )
        .await
        .expect_err("ambiguous");
        assert_eq!(
            ambiguous,
            EnrollmentError::AmbiguousInWorkspaceOne {
                username: Username::new("bob"),
                count: 2
            }
        );
        assert!(
            ambiguous
                .to_string()
                .contains("matches 2 users in Workspace ONE"),
            "{ambiguous}"
        );

        let missing = validate_enrollment(
            &fixture.directory,
            Some(&sam),
            &Username::new("bob"),
            |_| async { Ok(WorkspaceOneMatch::None) },
        )
        .await
        .expect_err("missing");
        assert_eq!(
            missing,
            EnrollmentError::NotInWorkspaceOne {
                username: Username::new("bob")
            }
        );

        let down = validate_enrollment(
            &fixture.directory,
            Some(&sam),
            &Username::new("bob"),
            |_| async { Err("HTTP 503".to_string()) },
        )
        .await
        .expect_err("down");
        assert!(
            matches!(down, EnrollmentError::WorkspaceOneUnavailable { .. }),
            "{down}"
        );
    }
}
