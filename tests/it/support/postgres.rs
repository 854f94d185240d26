//! A throwaway PostgreSQL cluster for the fleet tests (Debian package `postgresql`).
//!
//! Each test gets its own cluster under a temporary directory: `initdb` (scram-sha-256
//! over TCP, trust on the private Unix socket), then `postgres -D … -k SOCKDIR -p PORT
//! -c listen_addresses=127.0.0.1` as our child, stopped by its PID (fast shutdown) when
//! the test ends, also when it fails. PostgreSQL refuses to run as root, so when the
//! suite runs as root the cluster's files belong to `nobody` and both programs run with
//! that uid (`CommandExt::uid`). The fleet roles, schema and two stations are set up
//! through the project's own `fleet/roles.sql` and migrations.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUPERUSER_PASSWORD: &str = "pg-super-secret";
const MISSING: &str = "the fleet tests need PostgreSQL: run the README's test command (apt-get install -y --no-install-recommends postgresql)";

/// The newest `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(MISSING)
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect(MISSING).1
}

/// The uid/gid to run PostgreSQL with: ours, or `nobody` when we are root.
fn run_as() -> Option<(u32, u32)> {
    nix::unistd::geteuid().is_root().then_some((65534, 65534))
}

fn command(program: PathBuf) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = run_as() {
        command.uid(uid).gid(gid);
    }
    command
}

/// A running cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// More `postgres` arguments (the fleet benchmark's `-c max_connections=…`).
    extra: Vec<String>,
}

impl Postgres {
    /// initdb and start.
    pub fn start() -> Postgres {
        Postgres::start_with(&[])
    }

    /// initdb and start with more server arguments (later `-c` settings win).
    pub fn start_with(extra: &[&str]) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("badgedock-pg-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("sock")).unwrap();
        std::fs::write(dir.path().join("pwfile"), SUPERUSER_PASSWORD).unwrap();
        if let Some((uid, gid)) = run_as() {
            for path in [
                dir.path().to_path_buf(),
                dir.path().join("sock"),
                dir.path().join("pwfile"),
            ] {
                nix::unistd::chown(&path, Some(uid.into()), Some(gid.into())).unwrap();
            }
        }
        let output = command(bin_dir().join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", dir.path().join("pwfile").display()))
            .args(["--no-sync", "-E", "UTF8", "--locale=C"])
            .output()
            .expect(MISSING);
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut postgres = Postgres {
            dir,
            port,
            child: None,
            extra: extra.iter().map(|arg| arg.to_string()).collect(),
        };
        postgres.resume();
        postgres
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Starts the server again on the same data and port (after [`Postgres::stop`]).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .unwrap();
        let child = command(bin_dir().join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-k")
            .arg(self.dir.path().join("sock"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect(MISSING);
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let ready = command(bin_dir().join("pg_isready"))
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-q"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres did not start; log:\n{}", self.log());
    }

    /// Fast shutdown (SIGINT) by PID, waiting for the process to end.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// A URL for a role on the TCP port.
    pub fn url(&self, role: &str) -> String {
        format!("postgresql://{role}@127.0.0.1:{}/badgedock", self.port)
    }

    /// Connects over TCP as `role` with `password`.
    pub async fn connect(&self, role: &str, password: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(role)
            .password(password)
            .dbname("badgedock")
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| panic!("connect as {role}: {err}; log:\n{}", self.log()));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Creates the database, the project's roles and schema, and the given stations
    /// (`(station_id, cabinet name)`, login role `station_<id>` with password
    /// `pw-<id>`), plus a console role `fleet_console` / `pw-console`.
    pub async fn set_up_fleet(&self, stations: &[(&str, &str)]) {
        let (admin, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .password(SUPERUSER_PASSWORD)
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| panic!("connect as postgres: {err}; log:\n{}", self.log()));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        admin
            .batch_execute("CREATE DATABASE badgedock")
            .await
            .unwrap();
        let mut owner = self.connect("postgres", SUPERUSER_PASSWORD).await;
        owner
            .batch_execute(badgedock::fleet::ROLES_SQL)
            .await
            .unwrap();
        badgedock::fleet::migrate(&mut owner, &self.url("postgres"))
            .await
            .unwrap();
        for (id, name) in stations {
            owner
                .batch_execute(&format!(
                    "CREATE ROLE station_{id} LOGIN PASSWORD 'pw-{id}' IN ROLE badgedock_station;
                     INSERT INTO badgedock.stations (station_id, db_role, name)
                     VALUES ('{id}', 'station_{id}', '{name}');"
                ))
                .await
                .unwrap();
        }
        owner
            .batch_execute(
                "CREATE ROLE fleet_console LOGIN PASSWORD 'pw-console' IN ROLE badgedock_console",
            )
            .await
            .unwrap();
    }

    /// The `[fleet]` section for a station; its password file is written beside the
    /// cluster.
    pub fn station_section(&self, id: &str, poll_ms: u64) -> String {
        let password_file = self.dir.path().join(format!("password-{id}"));
        std::fs::write(&password_file, format!("pw-{id}\n")).unwrap();
        format!(
            "[fleet]\nurl = \"{}\"\nstation-id = \"{id}\"\npassword-file = \"{}\"\ntls = false\npoll-ms = {poll_ms}\n",
            self.url(&format!("station_{id}")),
            password_file.display()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
