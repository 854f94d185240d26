//! A real rsyslogd (Debian package rsyslog) for the SIEM tests: its own config in a
//! temporary directory, UDP and TCP inputs on loopback ports, every message written raw
//! (`%rawmsg%`) and as rsyslog parsed it (RFC 5424 fields) to two files. Started in the
//! foreground (`-n`) as a child and killed by its PID on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released).
pub fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

pub struct Rsyslog {
    pub dir: tempfile::TempDir,
    pub udp_port: u16,
    pub tcp_port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    pub fn start() -> Rsyslog {
        let dir = tempfile::Builder::new()
            .prefix("badgedock-rsyslog-")
            .tempdir()
            .unwrap();
        let rsyslog = Rsyslog {
            udp_port: free_port(true),
            tcp_port: free_port(false),
            dir,
            child: None,
        };
        rsyslog.restart()
    }

    /// Starts (again) on the same ports and files.
    pub fn restart(mut self) -> Rsyslog {
        let root = self.dir.path();
        let config = format!(
            r#"global(workDirectory="{root}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="raw" type="string" string="%rawmsg%\n")
template(name="parsed" type="string" string="%protocol-version%|%app-name%|%msgid%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{root}/raw.log" template="raw")
*.* action(type="omfile" file="{root}/parsed.log" template="parsed")
"#,
            root = root.display(),
            udp = self.udp_port,
            tcp = self.tcp_port,
        );
        std::fs::write(root.join("rsyslog.conf"), config).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(root.join("rsyslog.conf"))
            .arg("-i")
            .arg(root.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(root.join("rsyslogd.err")).unwrap(),
            ))
            .spawn()
            .expect(
                "rsyslogd (Debian package rsyslog) is installed by scripts/install-deps.sh --test",
            );
        self.child = Some(child);
        // Ready when the TCP input accepts.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.tcp_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen: {}",
                std::fs::read_to_string(root.join("rsyslogd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self
    }

    /// SIGKILL by PID and reap.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn raw(&self) -> Vec<String> {
        self.lines("raw.log")
    }

    pub fn parsed(&self) -> Vec<String> {
        self.lines("parsed.log")
    }

    /// Waits until `count` raw lines match `filter`.
    pub fn wait_for(&self, count: usize, filter: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines: Vec<String> = self.raw().into_iter().filter(|l| filter(l)).collect();
            if lines.len() >= count || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}
