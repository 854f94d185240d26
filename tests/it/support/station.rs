//! A whole station for end-to-end tests, built from the real binary: the Workspace ONE
//! simulator as its own process on loopback, a temporary sysfs tree for the dock, a badge
//! CSV, secret files, and `badgedock run` as a child process. Every process started here
//! is stopped by its PID when the guard drops.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_badgedock"))
}

/// A child process killed (SIGKILL) by PID on drop.
pub struct ChildGuard {
    pub child: Child,
}

impl ChildGuard {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL now and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait up to `timeout` for a clean exit; returns the exit status code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The simulator as a separate process.
pub struct SimProcess {
    /// Stops the simulator when the test ends.
    pub _guard: ChildGuard,
    pub url: String,
}

impl SimProcess {
    pub fn start(extra: &[&str]) -> SimProcess {
        let mut child = Command::new(bin())
            .args(["uem-sim", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start uem-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read sim address");
        let url = line.trim().rsplit(' ').next().expect("url").to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "unexpected sim banner {line:?}"
        );
        SimProcess {
            _guard: ChildGuard { child },
            url,
        }
    }

    /// The simulator's journal of calls.
    pub fn journal(&self) -> Vec<Value> {
        let body = http_get(&format!("{}/_sim/journal", self.url));
        let value: Value = serde_json::from_str(&body).expect("journal json");
        match value {
            Value::Array(entries) => entries,
            Value::Object(mut map) => match map.remove("entries").or_else(|| map.remove("journal"))
            {
                Some(Value::Array(entries)) => entries,
                _ => panic!("unexpected journal shape"),
            },
            _ => panic!("unexpected journal shape"),
        }
    }

    /// `(device, username)` for every enrolment-user change the simulator accepted, in
    /// order; the device is named by its USB serial form (UDID without hyphen, upper case).
    pub fn enrollment_changes(&self) -> Vec<(String, String)> {
        let state = self.state();
        self.journal()
            .iter()
            .filter(|entry| {
                entry["method"] == "PATCH"
                    && entry["path"]
                        .as_str()
                        .is_some_and(|p| p.to_ascii_lowercase().contains("/enrollmentuser/"))
                    && entry["status"].as_u64().is_some_and(|status| status < 300)
            })
            .filter_map(|entry| {
                let device = device_serial(&state, entry["device-id"].as_i64()?)?;
                let user = state["users"]
                    .as_array()?
                    .iter()
                    .find(|u| u["id"] == entry["user-id"])?;
                Some((device, user["username"].as_str()?.to_string()))
            })
            .collect()
    }

    /// `(device, command)` for every device command the simulator accepted, in order.
    pub fn commands(&self) -> Vec<(String, String)> {
        let state = self.state();
        self.journal()
            .iter()
            .filter(|entry| {
                entry["method"] == "POST"
                    && entry["status"].as_u64().is_some_and(|status| status < 300)
            })
            .filter_map(|entry| {
                let path = entry["path"].as_str()?;
                let command = path
                    .split("command=")
                    .nth(1)?
                    .split('&')
                    .next()?
                    .to_string();
                Some((
                    device_serial(&state, entry["device-id"].as_i64()?)?,
                    command,
                ))
            })
            .collect()
    }

    /// The enrolment user Workspace ONE (the simulator) has for a device now.
    pub fn enrollment_user(&self, usb_serial: &str) -> Option<String> {
        let state = self.state();
        let wanted = usb_serial.replace('-', "").to_ascii_uppercase();
        state["devices"].as_array()?.iter().find_map(|device| {
            let id = device["id"].as_i64()?;
            (device_serial(&state, id)? == wanted)
                .then(|| device["username"].as_str().map(str::to_string))?
        })
    }

    /// Waits until Workspace ONE (the simulator) has `username` as the device's enrolment
    /// user; the panic message carries the journal.
    pub fn wait_enrollment_user(&self, usb_serial: &str, username: &str, timeout: Duration) {
        let started = Instant::now();
        while self.enrollment_user(usb_serial).as_deref() != Some(username) {
            assert!(
                started.elapsed() < timeout,
                "{usb_serial} never assigned to {username}; journal: {:#?}",
                self.journal()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The simulator's device state.
    pub fn state(&self) -> Value {
        serde_json::from_str(&http_get(&format!("{}/_sim/state", self.url))).expect("state json")
    }
}

/// A device's USB-serial form (UDID without hyphen, upper case; or the serial number).
fn device_serial(state: &Value, id: i64) -> Option<String> {
    let device = state["devices"]
        .as_array()?
        .iter()
        .find(|d| d["id"] == id)?;
    match device["udid"].as_str() {
        Some(udid) if !udid.is_empty() => Some(udid.replace('-', "").to_ascii_uppercase()),
        _ => device["serial-number"].as_str().map(str::to_string),
    }
}

/// A blocking GET with reqwest on a throwaway runtime.
pub fn http_get(url: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reqwest::get(url)
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    })
}

/// One docked phone.
#[derive(Debug, Clone, Copy)]
pub struct Phone {
    pub slot: &'static str,
    pub port: &'static str,
    pub vendor: &'static str,
    pub serial: &'static str,
}

/// A station directory: config, secrets, badges, sysfs tree, state.
pub struct StationDir {
    pub dir: tempfile::TempDir,
}

impl StationDir {
    pub fn new(
        sim_url: &str,
        phones: &[Phone],
        badges: &[(&str, &str, &str)],
        extra_config: &str,
    ) -> StationDir {
        let dir = tempfile::Builder::new()
            .prefix("badgedock-it-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path();
        std::fs::write(
            root.join("client-secret"),
            format!("{}\n", badgedock::uemsim::DEMO_CLIENT_SECRET),
        )
        .unwrap();
        let mut csv = String::from("badge,username,display-name\n");
        for (badge, user, name) in badges {
            csv.push_str(&format!("{badge},{user},{name}\n"));
        }
        std::fs::write(root.join("badges.csv"), csv).unwrap();
        std::fs::create_dir_all(root.join("sys/bus/usb/devices")).unwrap();
        let slots: Vec<String> = phones
            .iter()
            .map(|p| format!("{{ label = \"{}\", port = \"{}\" }}", p.slot, p.port))
            .collect();
        let config = format!(
            r#"[station]
name = "Test ward"
state-dir = "{state}"
control-socket = "{socket}"

[uem]
base-url = "{sim_url}"
staging-user = "{staging}"
request-timeout-ms = 3000
connect-timeout-ms = 1000
[uem.auth]
kind = "oauth"
token-url = "{sim_url}/connect/token"
client-id = "{client_id}"
client-secret-file = "client-secret"

[dock]
sysfs-root = "{sysfs}"
rescan-ms = 50
flap-ms = 200
slots = [ {slots} ]

[directory]
kind = "file"
path = "badges.csv"

{extra_config}
"#,
            state = root.join("state").display(),
            socket = root.join("control.sock").display(),
            staging = badgedock::uemsim::DEMO_STAGING_USER,
            client_id = badgedock::uemsim::DEMO_CLIENT_ID,
            sysfs = root.join("sys").display(),
            slots = slots.join(", "),
        );
        std::fs::write(root.join("badgedock.toml"), config).unwrap();
        let station = StationDir { dir };
        for phone in phones {
            station.dock(phone);
        }
        station
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("badgedock.toml")
    }

    fn port_dir(&self, phone: &Phone) -> PathBuf {
        self.dir.path().join("sys/bus/usb/devices").join(phone.port)
    }

    pub fn dock(&self, phone: &Phone) {
        let dir = self.port_dir(phone);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("idVendor"), format!("{}\n", phone.vendor)).unwrap();
        std::fs::write(dir.join("idProduct"), "12a8\n").unwrap();
        std::fs::write(dir.join("serial"), format!("{}\n", phone.serial)).unwrap();
    }

    pub fn undock(&self, phone: &Phone) {
        let _ = std::fs::remove_dir_all(self.port_dir(phone));
    }

    /// Rewrites the config's slot map (phones not docked yet included), then starts.
    pub fn start_daemon_with_slots(&self, phones: &[&Phone]) -> ChildGuard {
        let config = std::fs::read_to_string(self.config()).unwrap();
        let slots: Vec<String> = phones
            .iter()
            .map(|p| format!("{{ label = \"{}\", port = \"{}\" }}", p.slot, p.port))
            .collect();
        let start = config.find("slots = [").unwrap();
        let end = start + config[start..].find('\n').unwrap();
        let config = format!(
            "{}slots = [ {} ]{}",
            &config[..start],
            slots.join(", "),
            &config[end..]
        );
        std::fs::write(self.config(), config).unwrap();
        self.start_daemon()
    }

    /// Starts `badgedock run` and waits until the control socket answers.
    pub fn start_daemon(&self) -> ChildGuard {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(self.config())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start daemon");
        let guard = ChildGuard { child };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if self.status_json().is_some() {
                return guard;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon did not come up; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .expect("run cli")
    }

    /// `badgedock tap BADGE`.
    pub fn tap(&self, badge: &str) -> Output {
        Command::new(bin())
            .args(["tap", "--config"])
            .arg(self.config())
            .arg(badge)
            .output()
            .expect("tap")
    }

    /// `badgedock status --json`, or None when the daemon does not answer.
    pub fn status_json(&self) -> Option<Value> {
        let output = Command::new(bin())
            .args(["status", "--json", "--config"])
            .arg(self.config())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Polls the status until `done` holds.
    pub fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < timeout {
            if let Some(status) = self.status_json() {
                if done(&status) {
                    return status;
                }
                last = status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; last status:\n{last:#}\nlog:\n{}",
            self.log()
        );
    }
}

/// The state word of a slot in a status JSON.
pub fn slot_state(status: &Value, label: &str) -> String {
    status["slots"]
        .as_array()
        .and_then(|slots| slots.iter().find(|slot| slot["label"] == label))
        .and_then(|slot| slot["state"].as_str())
        .unwrap_or("?")
        .to_string()
}

/// Path helper for tests that need the repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
