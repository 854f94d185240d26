//! A throwaway OpenLDAP server for the LDAP directory tests.
//!
//! Each test gets its own slapd (Debian package `slapd`) in a temporary directory: a
//! `slapd.conf` with an mdb database under `dc=hospital,dc=example`, a service account
//! that alone may read the staff, a few people carrying their badge in `employeeNumber`,
//! and a test CA plus server certificate made with the `openssl` CLI, served on an
//! `ldap://` (StartTLS-capable) and an `ldaps://` port on 127.0.0.1. slapd runs in the
//! foreground (`-d 0`) as our child and is stopped by its PID, also when a test fails
//! (Drop).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use badgedock::config::LdapConfig;
use badgedock::domain::Secret;

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SCHEMA_DIR: &str = "/etc/ldap/schema";
const MODULE_DIR: &str = "/usr/lib/ldap";
const MISSING: &str = "the LDAP tests need slapd and openssl: run the README's test command (apt-get install -y --no-install-recommends slapd openssl)";

pub const BASE_DN: &str = "dc=hospital,dc=example";
pub const ADMIN_DN: &str = "cn=admin,dc=hospital,dc=example";
pub const ADMIN_PASSWORD: &str = "admin-secret";
pub const SERVICE_DN: &str = "cn=svc-badgedock,ou=service,dc=hospital,dc=example";
pub const SERVICE_PASSWORD: &str = "svc-secret";

/// The people every server starts with.
const PEOPLE: &str = "\
dn: dc=hospital,dc=example
objectClass: dcObject
objectClass: organization
dc: hospital
o: Hospital

dn: ou=service,dc=hospital,dc=example
objectClass: organizationalUnit
ou: service

dn: cn=svc-badgedock,ou=service,dc=hospital,dc=example
objectClass: person
cn: svc-badgedock
sn: service
userPassword: svc-secret

dn: ou=staff,dc=hospital,dc=example
objectClass: organizationalUnit
ou: staff

dn: uid=alice,ou=staff,dc=hospital,dc=example
objectClass: inetOrgPerson
uid: alice
cn: Alice Martin
sn: Martin
displayName: Alice Martin
employeeNumber: DEADBEEF
ou: nursing

dn: uid=bob,ou=staff,dc=hospital,dc=example
objectClass: inetOrgPerson
uid: bob
cn: Bob Durand
sn: Durand
displayName: Bob Durand
employeeNumber: 04A1B2C3D4E5F6
ou: nursing
ou: Badge Enrollers

dn: uid=carol,ou=staff,dc=hospital,dc=example
objectClass: inetOrgPerson
uid: carol
cn: Carol Petit
sn: Petit
employeeNumber: 77(x)*

dn: uid=twin1,ou=staff,dc=hospital,dc=example
objectClass: inetOrgPerson
uid: twin1
cn: Twin One
sn: One
employeeNumber: 0BADC0DE

dn: uid=twin2,ou=staff,dc=hospital,dc=example
objectClass: inetOrgPerson
uid: twin2
cn: Twin Two
sn: Two
employeeNumber: 0BADC0DE

dn: cn=No Uid,ou=staff,dc=hospital,dc=example
objectClass: inetOrgPerson
cn: No Uid
sn: Uid
employeeNumber: 5EE0001D
";

/// A running (or stopped) slapd of one test.
pub struct Slapd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Port of `ldap://127.0.0.1:PORT` (plain, StartTLS available).
    pub ldap_port: u16,
    /// Port of `ldaps://127.0.0.1:PORT`.
    pub ldaps_port: u16,
}

impl Slapd {
    /// Builds the configuration, data and certificates, and starts the server.
    pub fn start() -> Slapd {
        for tool in [SLAPD, SLAPADD] {
            assert!(Path::new(tool).exists(), "{tool} is missing; {MISSING}");
        }
        assert!(
            Command::new("openssl")
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "openssl is missing; {MISSING}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        crate::support::certs::make_certificates(dir.path());
        std::fs::create_dir(dir.path().join("db")).expect("db dir");
        std::fs::write(dir.path().join("slapd.conf"), slapd_conf(dir.path())).expect("slapd.conf");
        let mut slapd = Slapd {
            dir,
            child: None,
            ldap_port: 0,
            ldaps_port: 0,
        };
        slapd.add(PEOPLE);
        // Ports are picked free and handed to slapd; another process may grab one in
        // between, so a start that fails is retried on new ports.
        let mut failures = Vec::new();
        for _ in 0..5 {
            slapd.ldap_port = free_port();
            slapd.ldaps_port = free_port();
            match slapd.spawn() {
                Ok(()) => return slapd,
                Err(message) => failures.push(message),
            }
        }
        panic!("slapd did not start: {}", failures.join("\n---\n"))
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:PORT`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that did not sign it.
    pub fn wrong_ca_file(&self) -> PathBuf {
        self.dir.path().join("wrong-ca.pem")
    }

    /// A directory configuration for this server: service account, badge in
    /// `employeeNumber`, groups in `ou`, enrollers in the `Badge Enrollers` unit.
    pub fn config(&self, url: String, cache_ttl_seconds: u64) -> LdapConfig {
        LdapConfig {
            url,
            starttls: false,
            ca_file: None,
            cache_ttl_seconds,
            timeout_ms: 3_000,
            bind_dn: Some(SERVICE_DN.to_string()),
            bind_password: Some(Secret::new(SERVICE_PASSWORD)),
            base_dn: format!("ou=staff,{BASE_DN}"),
            badge_attribute: "employeeNumber".into(),
            username_attribute: "uid".into(),
            display_name_attribute: "displayName".into(),
            group_attribute: "ou".into(),
            enroller_group: Some("Badge Enrollers".into()),
        }
    }

    /// Adds entries offline with slapadd (the server must be stopped, or not yet started).
    pub fn add(&self, ldif: &str) {
        assert!(self.child.is_none(), "slapadd needs the server stopped");
        let ldif_path = self.dir.path().join("add.ldif");
        std::fs::write(&ldif_path, ldif).expect("write ldif");
        let output = Command::new(SLAPADD)
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(&ldif_path)
            .output()
            .expect("run slapadd");
        assert!(
            output.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops the server by its PID (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) {
        let mut last = String::new();
        for _ in 0..5 {
            match self.spawn() {
                Ok(()) => return,
                Err(message) => last = message,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("slapd did not restart: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("slapd.log");
        let log = std::fs::File::create(&log_path).map_err(|err| err.to_string())?;
        let log_err = log.try_clone().map_err(|err| err.to_string())?;
        let mut child = Command::new(SLAPD)
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(format!("{}/ {}/", self.ldap_url(), self.ldaps_url()))
            .arg("-d")
            .arg("0")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| format!("cannot run {SLAPD}: {err}; {MISSING}"))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("slapd exited with {status}: {log}"));
            }
            let up = [self.ldap_port, self.ldaps_port]
                .iter()
                .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok());
            if up {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("slapd did not answer within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free loopback port")
}

fn slapd_conf(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "include {SCHEMA_DIR}/core.schema
include {SCHEMA_DIR}/cosine.schema
include {SCHEMA_DIR}/inetorgperson.schema
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath {MODULE_DIR}
moduleload back_mdb
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
database mdb
maxsize 16777216
suffix \"{BASE_DN}\"
rootdn \"{ADMIN_DN}\"
rootpw {ADMIN_PASSWORD}
directory {dir}/db
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact=\"{SERVICE_DN}\" read by anonymous auth by * none
"
    )
}
