//! The dashboard's socket feed against a real Unix control socket: it reports the daemon
//! down while nothing listens, goes live on the first snapshot, follows updates, goes
//! down when the daemon stops and comes back when it restarts. The screens themselves are
//! tested beside the view (`src/dashboard/tests.rs`).

#[path = "support/dashboard.rs"]
mod support;

use std::time::Duration;

use badgedock::dashboard::{spawn_socket_feed, Feed};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use support::{snapshot, FakeDaemon};

/// Generous bound so a broken feed fails the test instead of hanging it; the feed
/// normally reacts within a few hundred milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);

async fn wait_for(
    feed: &mut watch::Receiver<Feed>,
    what: &str,
    check: impl FnMut(&Feed) -> bool,
) -> Feed {
    let outcome = tokio::time::timeout(PATIENCE, feed.wait_for(check))
        .await
        .map(|waited| waited.map(|value| value.clone()));
    match outcome {
        Ok(Ok(value)) => value,
        Ok(Err(_)) => panic!("the feed task ended while waiting for {what}"),
        Err(_) => panic!(
            "the feed never showed {what}; last value: {:?}",
            *feed.borrow()
        ),
    }
}

fn live_station(feed: &Feed) -> Option<&str> {
    match feed {
        Feed::Live(snapshot) => Some(snapshot.station.as_str()),
        Feed::Down { .. } => None,
    }
}

#[tokio::test]
async fn socket_feed_follows_the_daemon_down_and_back() {
    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("control.sock");
    let cancel = CancellationToken::new();
    let _stop_feed = cancel.clone().drop_guard();
    let mut feed = spawn_socket_feed(socket.clone(), cancel.clone());

    // Nothing listens yet: the feed says so, naming the socket.
    let first_down = wait_for(&mut feed, "down before the daemon starts", |feed| {
        matches!(feed, Feed::Down { reason, .. } if reason.contains("cannot reach the badgedock daemon"))
    })
    .await;
    let Feed::Down {
        reason,
        since: first_since,
    } = first_down
    else {
        unreachable!()
    };
    assert!(reason.contains(&socket.display().to_string()), "{reason}");

    // The daemon starts: live, then every change.
    let daemon = FakeDaemon::start(&socket, snapshot("cabinet A"));
    wait_for(&mut feed, "the first snapshot", |feed| {
        live_station(feed) == Some("cabinet A")
    })
    .await;
    daemon.publish(snapshot("cabinet A, after a tap"));
    wait_for(&mut feed, "the update", |feed| {
        live_station(feed) == Some("cabinet A, after a tap")
    })
    .await;

    // The daemon stops: down again, with a fresh "since".
    daemon.stop().await;
    let down = wait_for(&mut feed, "down after the daemon stopped", |feed| {
        matches!(feed, Feed::Down { .. })
    })
    .await;
    let Feed::Down {
        since: second_since,
        ..
    } = down
    else {
        unreachable!()
    };
    assert!(second_since >= first_since);

    // The daemon restarts: the feed reconnects by itself.
    let _daemon = FakeDaemon::start(&socket, snapshot("cabinet A, restarted"));
    wait_for(&mut feed, "the restarted daemon", |feed| {
        live_station(feed) == Some("cabinet A, restarted")
    })
    .await;

    // Cancelling ends the task, which closes the feed.
    cancel.cancel();
    let closed =
        tokio::time::timeout(PATIENCE, async { while feed.changed().await.is_ok() {} }).await;
    assert!(closed.is_ok(), "the feed stayed open after cancel");
}

#[tokio::test]
async fn socket_feed_reports_a_protocol_mismatch() {
    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("control.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    // A daemon from the future: every connection gets a version-2 line.
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (read, mut write) = stream.into_split();
            // Read the subscribe line first, as the real daemon does.
            let _ = BufReader::new(read).lines().next_line().await;
            let _ = write
                .write_all(b"{\"v\":2,\"type\":\"done\",\"message\":\"hello\"}\n")
                .await;
        }
    });
    let cancel = CancellationToken::new();
    let _stop_feed = cancel.clone().drop_guard();
    let mut feed = spawn_socket_feed(socket, cancel);
    let down = wait_for(
        &mut feed,
        "the version mismatch",
        |feed| matches!(feed, Feed::Down { reason, .. } if reason.contains("protocol version 2")),
    )
    .await;
    let Feed::Down { reason, .. } = down else {
        unreachable!()
    };
    assert!(reason.contains("install matching versions"), "{reason}");
    server.abort();
}
