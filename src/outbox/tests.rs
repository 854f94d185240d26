//! The scheduler's rules, one by one.

use super::*;
use crate::checkout::ActionPurpose;
use crate::domain::{DeviceKey, Username};

fn phone(id: &str) -> DeviceKey {
    DeviceKey::android(id)
}

fn row(id: u64, device: &DeviceKey, action: MdmAction) -> ActionRecord {
    ActionRecord {
        id: ActionId(id),
        device: device.clone(),
        checkout: None,
        purpose: ActionPurpose::CheckOut,
        action,
        state: ActionState::Pending,
        created_at: Timestamp(1_000 + id as i64),
        note: None,
    }
}

fn assign(id: u64, device: &DeviceKey) -> ActionRecord {
    row(
        id,
        device,
        MdmAction::AssignUser {
            username: Username::new("alice"),
        },
    )
}

fn wipe(id: u64, device: &DeviceKey) -> ActionRecord {
    row(
        id,
        device,
        MdmAction::Command {
            command: DeviceCommand::EnterpriseWipe,
        },
    )
}

fn ids(dispatches: &[Dispatch]) -> Vec<u64> {
    dispatches.iter().map(|d| d.id().0).collect()
}

fn transient(retry_after_ms: Option<i64>) -> Answer {
    Answer::Failed(Failure {
        kind: FailureKind::Transient { retry_after_ms },
        message: "HTTP 503".into(),
        cause: FailCause::Other,
    })
}

#[test]
fn one_row_per_device_at_a_time_in_id_order() {
    let (a, b) = (phone("A"), phone("B"));
    let mut s = Scheduler::new(4);
    s.apply(&[assign(1, &a), assign(2, &a), assign(3, &b)], Mono(0));
    assert_eq!(ids(&s.poll(Mono(0))), vec![1, 3]);
    assert!(s.poll(Mono(0)).is_empty(), "both devices are busy");
    s.complete(ActionId(1), Mono(10), Answer::Done);
    assert_eq!(ids(&s.poll(Mono(10))), vec![2]);
}

#[test]
fn a_cancelled_row_in_flight_still_blocks_the_device() {
    // Class 5: the undo must not overtake the assignment it undoes.
    let a = phone("A");
    let mut s = Scheduler::new(4);
    s.apply(&[assign(1, &a)], Mono(0));
    assert_eq!(ids(&s.poll(Mono(0))), vec![1]);
    let mut cancelled = assign(1, &a);
    cancelled.state = ActionState::Cancelled;
    let undo = row(2, &a, MdmAction::AssignStagingUser);
    s.apply(&[cancelled, undo], Mono(5));
    assert!(
        s.poll(Mono(5)).is_empty(),
        "the undo waits for the cancelled assignment still in flight"
    );
    assert_eq!(
        s.waiting(),
        1,
        "the cancelled row is not counted as waiting"
    );
    s.complete(ActionId(1), Mono(300), Answer::Done);
    assert_eq!(ids(&s.poll(Mono(300))), vec![2]);
}

#[test]
fn concurrency_bounds_rows_in_flight() {
    let mut s = Scheduler::new(2);
    let rows: Vec<ActionRecord> = (1..=5)
        .map(|n| assign(n, &phone(&format!("P{n}"))))
        .collect();
    s.apply(&rows, Mono(0));
    assert_eq!(ids(&s.poll(Mono(0))), vec![1, 2]);
    s.complete(ActionId(2), Mono(1), Answer::Done);
    assert_eq!(ids(&s.poll(Mono(1))), vec![3]);
}

#[test]
fn transient_failures_back_off_and_reset_when_workspace_one_answers() {
    // Class 12: after an outage, waiting rows go at once, not after their backoff.
    let (a, b) = (phone("A"), phone("B"));
    let mut s = Scheduler::new(4);
    s.apply(&[assign(1, &a)], Mono(0));
    for (attempt, at) in [(1u32, 0i64), (2, 2_000), (3, 6_000), (4, 14_000)] {
        assert_eq!(ids(&s.poll(Mono(at))), vec![1], "attempt {attempt}");
        let settled = s
            .complete(ActionId(1), Mono(at), transient(None))
            .expect("in flight");
        assert_eq!(settled.attempts, attempt);
        assert_eq!(settled.retry_at, Some(Mono(at + backoff_ms(attempt, None))));
    }
    assert_eq!(s.reachable(), Some(false));
    assert_eq!(s.next_wake(), Some(Mono(30_000)));
    // Another device's row gets through: Workspace ONE is back.
    s.apply(&[assign(2, &b)], Mono(15_000));
    assert_eq!(ids(&s.poll(Mono(15_000))), vec![2]);
    s.complete(ActionId(2), Mono(15_100), Answer::Done);
    assert_eq!(s.reachable(), Some(true));
    assert_eq!(
        ids(&s.poll(Mono(15_100))),
        vec![1],
        "no waiting for the backoff"
    );
}

#[test]
fn a_lookup_answer_also_resets_the_backoff() {
    let a = phone("A");
    let mut s = Scheduler::new(1);
    s.apply(&[assign(1, &a)], Mono(0));
    s.poll(Mono(0));
    s.complete(ActionId(1), Mono(0), transient(None));
    s.poll(Mono(2_000));
    s.complete(ActionId(1), Mono(2_000), transient(None));
    assert!(s.poll(Mono(3_000)).is_empty());
    s.answered(Mono(3_000));
    assert_eq!(ids(&s.poll(Mono(3_000))), vec![1]);
}

#[test]
fn retry_after_pauses_every_row() {
    let (a, b) = (phone("A"), phone("B"));
    let mut s = Scheduler::new(4);
    s.apply(&[assign(1, &a)], Mono(0));
    s.poll(Mono(0));
    s.complete(ActionId(1), Mono(0), transient(Some(7_000)));
    s.apply(&[assign(2, &b)], Mono(100));
    assert!(s.poll(Mono(100)).is_empty(), "paused by Retry-After");
    assert_eq!(s.next_wake(), Some(Mono(7_000)));
    assert_eq!(ids(&s.poll(Mono(7_000))), vec![1, 2]);
}

#[test]
fn refused_credentials_pause_until_an_answer() {
    let a = phone("A");
    let mut s = Scheduler::new(4);
    s.apply(&[assign(1, &a)], Mono(0));
    s.poll(Mono(0));
    let refused = Answer::Failed(Failure {
        kind: FailureKind::Unauthorized,
        message: "HTTP 401".into(),
        cause: FailCause::Other,
    });
    let settled = s
        .complete(ActionId(1), Mono(0), refused)
        .expect("in flight");
    assert_eq!(settled.retry_at, Some(Mono(UNAUTHORIZED_RETRY_MS)));
    assert!(s.poll(Mono(60_000)).is_empty());
    s.answered(Mono(60_000));
    assert_eq!(ids(&s.poll(Mono(60_000))), vec![1]);
}

#[test]
fn a_refusal_fails_the_row_for_good() {
    let a = phone("A");
    let mut s = Scheduler::new(4);
    s.apply(&[assign(1, &a), assign(2, &a)], Mono(0));
    s.poll(Mono(0));
    let refused = Answer::Failed(Failure {
        kind: FailureKind::Rejected,
        message: "no such user".into(),
        cause: FailCause::UnknownUser,
    });
    let settled = s
        .complete(ActionId(1), Mono(1), refused)
        .expect("in flight");
    assert_eq!(
        settled.outcome,
        ActionOutcome::Failed {
            message: "no such user".into(),
            cause: FailCause::UnknownUser
        }
    );
    assert_eq!(ids(&s.poll(Mono(1))), vec![2]);
}

#[test]
fn a_wipe_is_marked_sent_before_it_leaves_and_never_sent_twice() {
    let a = phone("A");
    let mut s = Scheduler::new(4);
    s.apply(&[wipe(1, &a)], Mono(0));
    let first = s.poll(Mono(0));
    assert!(matches!(
        first.as_slice(),
        [Dispatch::Send {
            mark_sent: true,
            ..
        }]
    ));
    s.marked_sent(ActionId(1), Timestamp(5));
    // The answer is lost (timeout): the next attempt asks instead of sending.
    s.complete(ActionId(1), Mono(0), transient(None));
    let again = s.poll(Mono(2_000));
    assert!(
        matches!(again.as_slice(), [Dispatch::Verify { .. }]),
        "{again:?}"
    );
    let settled = s
        .complete(ActionId(1), Mono(2_000), Answer::Pending)
        .expect("in flight");
    assert_eq!(settled.outcome, ActionOutcome::Done);
}

#[test]
fn after_a_restart_a_wipe_marked_sent_is_verified_and_rows_are_due_at_once() {
    let a = phone("A");
    let b = phone("B");
    let mut s = Scheduler::new(4);
    s.restore(
        vec![
            StoredRow {
                record: wipe(1, &a),
                attempts: 1,
                sent_at: Some(Timestamp(5)),
            },
            StoredRow {
                record: assign(2, &b),
                attempts: 6,
                sent_at: None,
            },
        ],
        Mono(42),
    );
    let dispatched = s.poll(Mono(42));
    assert!(matches!(dispatched[0], Dispatch::Verify { .. }));
    assert_eq!(ids(&dispatched), vec![1, 2]);
    let settled = s
        .complete(ActionId(1), Mono(50), Answer::NotPending)
        .expect("in flight");
    assert!(matches!(settled.outcome, ActionOutcome::Failed { .. }));
}

#[test]
fn rows_settled_by_the_engine_leave_the_queue() {
    let a = phone("A");
    let mut s = Scheduler::new(4);
    s.apply(&[assign(1, &a), assign(2, &a)], Mono(0));
    let mut gone = assign(1, &a);
    gone.state = ActionState::Cancelled;
    s.apply(&[gone], Mono(1));
    assert_eq!(ids(&s.poll(Mono(1))), vec![2]);
    assert_eq!(s.waiting(), 1);
    assert_eq!(s.oldest_waiting(), Some(Timestamp(1_002)));
}

#[test]
fn a_notification_says_nothing_about_workspace_one() {
    // A webhook receiver that is down (or asks to wait) is not Workspace ONE: the
    // station's Workspace ONE work goes on and the screen does not say it is unreachable.
    let a = phone("A");
    let mut notify = row(
        1,
        &a,
        MdmAction::Webhook {
            url: "https://hooks.example/overdue".into(),
            body: "{}".into(),
        },
    );
    notify.purpose = ActionPurpose::Escalation;
    let mut s = Scheduler::new(4);
    s.apply(&[notify, assign(2, &a)], Mono(0));
    assert_eq!(ids(&s.poll(Mono(0))), vec![1, 2]);
    s.complete(ActionId(2), Mono(10), Answer::Done);
    s.complete(ActionId(1), Mono(20), transient(Some(60_000)));
    assert_eq!(s.reachable(), Some(true));
    s.apply(&[assign(3, &a)], Mono(30));
    assert_eq!(
        ids(&s.poll(Mono(30))),
        vec![3],
        "the receiver's Retry-After pauses only the notification"
    );
}
