//! The dashboard in a real terminal: tmux runs the binary, `send-keys` types, and
//! `capture-pane` reads what a nurse would see. Each test uses its own tmux server
//! socket and stops that server by its PID.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::station::{bin, SimProcess, StationDir};

/// A private tmux server with one session running `command`.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, command: &str, width: u16, height: u16) -> Tmux {
        let have_tmux = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            have_tmux,
            "tmux is not installed: run the README's test command (scripts/test.sh installs it)"
        );
        let socket = format!("badgedock-it-{name}-{}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(command)
            .env("TERM", "xterm-256color")
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        Tmux { socket }
    }

    fn capture(&self) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    fn keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t", keys])
            .status()
            .unwrap();
    }

    fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.capture();
            if done(&screen) {
                return screen;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn server_pid(&self) -> Option<i32> {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "display-message", "-p", "#{pid}"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if let Some(pid) = self.server_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

fn quoted(path: &Path) -> String {
    format!("'{}'", path.display())
}

#[test]
fn the_demo_shows_the_slot_to_take_after_a_tap() {
    let command = format!("{} demo", quoted(&bin()));
    let tmux = Tmux::start("demo", &command, 120, 40);
    // The idle screen shows while the demo's phones are still being identified; a tap
    // then (a loaded machine) is rightly refused with "no phone ready".
    tmux.wait_for(
        Duration::from_secs(30),
        "the idle demo screen with its six phones ready",
        |screen| screen.contains("Tap your badge") && screen.matches("✓ available").count() >= 6,
    );
    tmux.keys("1");
    let screen = tmux.wait_for(Duration::from_secs(15), "the instruction", |screen| {
        screen.contains("TAKE SLOT")
    });
    assert!(screen.contains("ALICE MARTIN"), "{screen}");
    tmux.keys("q");
}

#[test]
fn the_dashboard_says_when_the_daemon_is_down_and_reconnects() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &crate::daemon::PHONES, &crate::daemon::BADGES, "");
    let mut daemon = station.start_daemon();
    let command = format!(
        "{} dashboard --config {}",
        quoted(&bin()),
        quoted(&station.config())
    );
    let tmux = Tmux::start("dash", &command, 160, 50);
    tmux.wait_for(Duration::from_secs(15), "the station screen", |screen| {
        screen.contains("Test ward")
    });

    daemon.kill();
    tmux.wait_for(
        Duration::from_secs(15),
        "the daemon-down notice",
        |screen| screen.contains("daemon is not running"),
    );

    let _daemon = station.start_daemon();
    tmux.wait_for(
        Duration::from_secs(15),
        "the reconnected screen",
        |screen| screen.contains("Test ward") && !screen.contains("daemon is not running"),
    );
    assert!(station.tap("04A1B2C3D4E5F6").status.success());
    tmux.wait_for(
        Duration::from_secs(10),
        "the tap on the dashboard",
        |screen| screen.contains("TAKE SLOT"),
    );
}
