//! A real SMTP server on loopback for the e-mail tests: Debian's `python3-aiosmtpd`
//! (`python3 -m aiosmtpd`) with STARTTLS required (`--tlscert`/`--tlskey`, a test CA's
//! server certificate for localhost) and the Maildir handler, so each message received is
//! one file under `maildir/new`. Stopped by its PID when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MISSING: &str = "the e-mail tests need aiosmtpd: run the README's test command (apt-get install -y --no-install-recommends python3-aiosmtpd)";

/// Debian's interpreter, where python3-aiosmtpd is installed (a `python3` earlier on the
/// PATH, such as pyenv's, does not have it).
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// The running server.
pub struct SmtpServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl SmtpServer {
    /// Starts aiosmtpd on a free loopback port, STARTTLS required.
    pub fn start() -> SmtpServer {
        let dir = tempfile::Builder::new()
            .prefix("badgedock-smtp-")
            .tempdir()
            .expect("tempdir");
        crate::support::certs::make_certificates(dir.path());
        let maildir = dir.path().join("maildir");
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let child = Command::new(python())
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("--tlscert")
                .arg(dir.path().join("server.pem"))
                .arg("--tlskey")
                .arg(dir.path().join("server.key"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start aiosmtpd: {err}; {MISSING}"));
            let mut server = SmtpServer {
                dir: tempfile::Builder::new()
                    .prefix("badgedock-smtp-unused-")
                    .tempdir()
                    .expect("tempdir"),
                port,
                child,
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(status)) = server.child.try_wait() {
                    failures.push(format!("aiosmtpd exited with {status}; {MISSING}"));
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    server.dir = dir;
                    return server;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        panic!("aiosmtpd did not start: {}", failures.join("; "))
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The messages received, as their raw text.
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("maildir/new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
