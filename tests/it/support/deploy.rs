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
