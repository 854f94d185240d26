//! Helpers for the deploy tests: running tools with their output kept for the failure
//! message, and a throw-away Debian root file system unpacked from a cached tarball.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory (heavy artefacts live below it).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// Whether `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// A finished command: what ran and what it printed.
pub struct Ran {
    pub what: String,
    pub output: Output,
}

impl Ran {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Everything it said, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "$ {}\n[exit {:?}]\n--- stdout\n{}--- stderr\n{}",
            self.what,
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }

    /// Panics with the transcript unless it exited 0.
    pub fn ok(self) -> Ran {
        assert!(
            self.output.status.success(),
            "command failed:\n{}",
            self.transcript()
        );
        self
    }
}

/// Runs a command to completion (stdin closed), keeping its output.
pub fn run(command: &mut Command) -> Ran {
    let what = format!("{command:?}");
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot start {what}: {err}"));
    Ran { what, output }
}

/// A Debian root file system unpacked into a directory under target/, deleted on drop.
/// Commands run in it through `chroot`, each in its own private mount namespace with
/// /proc and /dev mounted, so nothing stays mounted on the host once a command ends,
/// even when the test fails half-way.
pub struct Chroot {
    root: PathBuf,
}

impl Chroot {
    /// Unpacks `tarball` into a fresh directory below `parent`, named after `label` (tests
    /// running at the same time use different labels).
    pub fn unpack(tarball: &Path, parent: &Path, label: &str) -> Chroot {
        let root = parent.join(format!("root-{label}-{}", std::process::id()));
        if root.exists() {
            remove_tree(&root);
        }
        std::fs::create_dir_all(&root).unwrap();
        let chroot = Chroot { root };
        run(Command::new("tar")
            .arg("-C")
            .arg(&chroot.root)
            .arg("-xf")
            .arg(tarball))
        .ok();
        chroot
    }

    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// Runs `script` with /bin/sh inside the root, as root.
    pub fn sh(&self, script: &str) -> Ran {
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(
                r#"set -e
root=$1; shift
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
exec chroot "$root" /bin/sh -c "$1""#,
            )
            .arg("sh")
            .arg(&self.root)
            .arg(script)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive");
        let mut ran = run(&mut command);
        ran.what = format!("(in chroot) {script}");
        ran
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        remove_tree(&self.root);
    }
}

fn remove_tree(path: &Path) {
    // --one-file-system: never descend into anything still mounted below it.
    let _ = Command::new("rm")
        .arg("-rf")
        .arg("--one-file-system")
        .arg(path)
        .status();
}

/// A Debian root booted by `systemd-nspawn --boot`: systemd runs as the container's
/// PID 1, on a private network (loopback only). Commands run inside through `nsenter`
/// into the namespaces of that PID 1, each under a host-side `timeout`. The container is
/// powered off by signalling systemd-nspawn's PID (SIGKILL of both PIDs when it does not
/// stop in time), and the root is deleted, when the value drops.
pub struct Container {
    nspawn: std::process::Child,
    /// systemd, PID 1 inside, as the host numbers it.
    init: i32,
    name: String,
    log: PathBuf,
    // Dropped after `drop` has stopped the container: deletes the root.
    root: Chroot,
}

/// How long one command inside may take before `timeout` kills it.
const COMMAND_TIMEOUT_SECS: u32 = 120;

impl Container {
    /// Boots `root` and waits until systemd reports the system running (or degraded).
    pub fn boot(root: Chroot) -> Container {
        let name = format!("badgedock-it-{}", std::process::id());
        let log = root.root.with_file_name(format!("{name}.console.log"));
        let console = std::fs::File::create(&log).unwrap();
        let nspawn = Command::new("systemd-nspawn")
            .args([
                "--quiet",
                "--boot",
                "--keep-unit",
                "--register=no",
                "--private-network",
                "--console=passive",
            ])
            .arg(format!("--machine={name}"))
            .arg("--directory")
            .arg(&root.root)
            .stdin(std::process::Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start systemd-nspawn ({err}): apt-get install systemd-container")
            });
        let nspawn_pid = nspawn.id();
        let mut container = Container {
            nspawn,
            init: 0,
            name,
            log,
            root,
        };
        let started = std::time::Instant::now();
        while container.init == 0 {
            if let Ok(Some(status)) = container.nspawn.try_wait() {
                panic!(
                    "systemd-nspawn exited at once ({status}):\n{}",
                    container.console_tail()
                );
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "systemd-nspawn started no init within 30 s:\n{}",
                container.console_tail()
            );
            container.init = container_init(nspawn_pid).unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // systemd creates its private socket (/run/systemd/private) a moment after it
        // starts; until then `systemctl` fails with "Failed to connect to bus" and prints
        // no state, so ask again until it answers, then wait for the boot to finish.
        let mut state = String::new();
        while started.elapsed() < std::time::Duration::from_secs(90) {
            let ran = container.sh(
                "test -S /run/systemd/private && timeout 80 systemctl is-system-running --wait",
            );
            state = format!("{}{}", ran.stdout(), ran.stderr());
            if matches!(ran.stdout().trim(), "running" | "degraded") {
                return container;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        container.fail(&format!(
            "systemd did not finish booting within 90 s: {state:?}"
        ))
    }

    /// Runs `script` with /bin/sh inside the container, as root.
    pub fn sh(&self, script: &str) -> Ran {
        let mut command = Command::new("timeout");
        command
            .args([
                "--kill-after=5",
                &COMMAND_TIMEOUT_SECS.to_string(),
                "nsenter",
            ])
            .arg(format!("--target={}", self.init))
            .args(["--all", "--root", "--wd", "--", "/bin/sh", "-c"])
            .arg(script)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LC_ALL", "C")
            .env("SYSTEMD_PAGER", "")
            .env("DEBIAN_FRONTEND", "noninteractive");
        let mut ran = run(&mut command);
        ran.what = format!("(in the container) {script}");
        ran
    }

    /// Like `sh`, but fails the test (with the journal) unless it exits 0.
    pub fn ok(&self, script: &str) -> Ran {
        let ran = self.sh(script);
        if !ran.output.status.success() {
            self.fail(&format!("command failed:\n{}", ran.transcript()));
        }
        ran
    }

    /// `systemctl show -p PROPERTY --value UNIT`.
    pub fn property(&self, unit: &str, property: &str) -> String {
        self.ok(&format!("systemctl show -p {property} --value {unit}"))
            .stdout()
            .trim()
            .to_string()
    }

    /// Polls `done` every 200 ms; fails the test with `what` and the journal after
    /// `timeout`.
    pub fn wait_for(
        &self,
        timeout: std::time::Duration,
        what: &str,
        mut done: impl FnMut() -> bool,
    ) {
        let started = std::time::Instant::now();
        while !done() {
            if started.elapsed() > timeout {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Fails the test with `message`, the tail of the container's journal and of its
    /// console.
    pub fn fail(&self, message: &str) -> ! {
        let journal = self
            .sh("journalctl --no-pager -o short-monotonic -n 80 2>&1")
            .stdout();
        let status = self
            .sh("timeout 10 badgedock status 2>&1; systemctl --no-pager status badgedock 2>&1 | head -15")
            .stdout();
        panic!(
            "{message}\n--- container journal (last 80 lines)\n{journal}--- badgedock status\n{status}--- console\n{}",
            self.console_tail()
        );
    }

    fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A path inside the container, as the host sees it.
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.path(inside)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        // SIGTERM makes systemd-nspawn power the container off (SIGRTMIN+3 to its init).
        let _ = kill(Pid::from_raw(self.nspawn.id() as i32), Signal::SIGTERM);
        let started = std::time::Instant::now();
        loop {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                break;
            }
            if started.elapsed() > std::time::Duration::from_secs(30) {
                // Killing the init ends every process of the container's PID namespace.
                if self.init > 0 {
                    let _ = kill(Pid::from_raw(self.init), Signal::SIGKILL);
                }
                let _ = self.nspawn.kill();
                let _ = self.nspawn.wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // systemd-nspawn leaves its (empty) propagation directory behind on a host
        // without systemd.
        let _ = std::fs::remove_dir(format!("/run/systemd/nspawn/propagate/{}", self.name));
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The container's PID 1 as the host numbers it: the child of systemd-nspawn that runs
/// `systemd` in a PID namespace of its own. systemd-nspawn first forks a helper (the
/// "outer child", still in the host's PID namespace, which sets up the mounts and then
/// forks the init and exits): taking the first child that appears, as this code once
/// did, entered the helper's namespaces, where `systemctl` finds no systemd and says
/// "offline" (the reason this test was out of the suite).
fn container_init(nspawn: u32) -> Option<i32> {
    let own = std::fs::read_link("/proc/self/ns/pid").ok()?;
    children_of(nspawn).into_iter().find(|pid| {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let namespace = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        comm.trim() == "systemd" && namespace.is_some_and(|ns| ns != own)
    })
}

/// The PIDs of `pid`'s children (all threads).
fn children_of(pid: u32) -> Vec<i32> {
    let mut children = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return children;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    children
}
