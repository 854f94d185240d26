//! Real-stack PC/SC harness: a private pcscd with the vsmartcard `vpcd` driver, and the
//! project's own virtual contactless card, so reader code is tested against pcsc-lite
//! itself rather than a mock.
//!
//! - [`Pcscd::start`] runs `/usr/sbin/pcscd --foreground` in a fresh network namespace
//!   (`unshare --net`; vpcd listens on 0.0.0.0:35963 and 35964, which must stay private) with a
//!   reader.conf of its own: [`READERS`] names the two readers it creates. Only one
//!   pcscd can run on a machine (`/run/pcscd/pcscd.comm`), so `start` takes a
//!   process-wide lock that the returned value holds: PC/SC tests run one at a time even
//!   though `cargo test` runs tests on parallel threads. Dropping the value stops pcscd
//!   by its PID.
//! - [`Pcscd::insert`] puts a [`VirtualCard`] on a reader: a thread joins pcscd's
//!   network namespace (`setns`) and connects to vpcd's port for that reader; the card is
//!   "on the reader" while the connection is open. It answers `FF CA 00 00 00` with its
//!   UID (or a chosen error status word) and records every APDU it receives.
//!
//! vpcd sends each message as two writes on a socket without TCP_NODELAY; the card sets
//! TCP_QUICKACK before every read, otherwise Nagle plus delayed ACK add ~40 ms per APDU.
//!
//! Needs root and the Debian packages `pcscd`, `vsmartcard-vpcd`, `util-linux`
//! (`unshare`) and `iproute2` (`ip`); without them the tests fail and say so.

#![allow(dead_code)] // Each user (tests, the bench) uses a different part.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The readers of [`Pcscd::start`], by slot.
pub const READERS: [&str; 2] = ["Virtual PCD 00 00", "Virtual PCD 00 01"];

/// vpcd's TCP port for slot 0; slot 1 listens on the next one.
const FIRST_PORT: u16 = 0x8C7B;

/// pcscd and the vpcd driver where Debian (and most distributions) install them.
const PCSCD_PATHS: [&str; 2] = ["/usr/sbin/pcscd", "/usr/local/sbin/pcscd"];
const VPCD_PATHS: [&str; 3] = [
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/lib64/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so",
];

/// How to get what the harness needs.
const INSTALL_HINT: &str =
    "the PC/SC tests need root and the Debian packages pcscd, vsmartcard-vpcd, \
     util-linux and iproute2: run the README's test command (./scripts/test.sh, as root), \
     which installs them";

/// Serialises every user of pcscd in this process.
static PCSCD_LOCK: Mutex<()> = Mutex::new(());

/// A running private pcscd (see the module doc). Stopped by PID on drop.
pub struct Pcscd {
    child: Option<Child>,
    pcscd: PathBuf,
    /// vpcd's reader name without pcscd's `" 00 0n"` suffix.
    friendly_name: String,
    dir: tempfile::TempDir,
    /// Held for this value's life; declared last so pcscd is stopped before release.
    _lock: MutexGuard<'static, ()>,
}

impl Pcscd {
    /// Starts pcscd with the two vpcd readers of [`READERS`] and waits until they are
    /// listed. Panics with what to do when pcscd or vpcd is missing, when not root, or
    /// when another pcscd runs.
    pub fn start() -> Pcscd {
        Pcscd::start_as("Virtual PCD")
    }

    /// Like [`Pcscd::start`], with the vpcd readers named `"{friendly_name} 00 00"` and
    /// `"{friendly_name} 00 01"`, e.g. `"ACS ACR122U PICC Interface"` to run code meant
    /// for that reader model. (vpcd cannot appear twice in one pcscd: a second entry
    /// overwrites the first one's slots inside the driver.)
    pub fn start_as(friendly_name: &str) -> Pcscd {
        let lock = PCSCD_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pcscd =
            find(&PCSCD_PATHS).unwrap_or_else(|| panic!("pcscd is not installed; {INSTALL_HINT}"));
        let vpcd = find(&VPCD_PATHS).unwrap_or_else(|| {
            panic!("the vpcd driver (vsmartcard-vpcd) is not installed; {INSTALL_HINT}")
        });
        for tool in ["unshare", "ip", "sh"] {
            assert!(on_path(tool), "`{tool}` is not on PATH; {INSTALL_HINT}");
        }
        assert!(
            nix::unistd::geteuid().is_root(),
            "not running as root; {INSTALL_HINT}"
        );
        if let Some(pid) = running_pcscd() {
            panic!(
                "another pcscd (pid {pid}) is running; stop it first: the PC/SC tests start their own \
                 and only one pcscd can own /run/pcscd"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("reader.conf.d")).unwrap();
        // vpcd creates two readers for the entry, listening on FIRST_PORT and the next.
        let conf = format!(
            "FRIENDLYNAME \"{friendly_name}\"\nDEVICENAME /dev/null:0x{FIRST_PORT:04X}\nLIBPATH {}\nCHANNELID 0x{FIRST_PORT:04X}\n",
            vpcd.display()
        );
        std::fs::write(dir.path().join("reader.conf.d/vpcd"), conf).unwrap();
        let mut pcscd = Pcscd {
            child: None,
            pcscd,
            friendly_name: friendly_name.to_string(),
            dir,
            _lock: lock,
        };
        pcscd.launch();
        pcscd
    }

    /// The name pcscd gives the reader of `slot` (0 or 1).
    pub fn reader(&self, slot: usize) -> String {
        assert!(slot < 2, "no reader in slot {slot}");
        format!("{} 00 {slot:02}", self.friendly_name)
    }

    /// pcscd's PID (that of the running one).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("pcscd is not running").id()
    }

    /// Kills pcscd with SIGKILL, as a crash would, and waits for it to be gone.
    pub fn kill(&mut self) {
        self.signal_and_reap(Signal::SIGKILL);
    }

    /// Stops pcscd with SIGTERM (SIGKILL after 5 s) and waits for it to be gone.
    pub fn stop(&mut self) {
        self.signal_and_reap(Signal::SIGTERM);
    }

    /// Starts pcscd again after [`Pcscd::kill`] or [`Pcscd::stop`] (new PID, new
    /// namespace, same readers).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "pcscd is still running");
        self.launch();
    }

    /// Puts `card` on the reader of `slot` (0 or 1, see [`Pcscd::reader`]); it stays
    /// until [`CardOnReader::remove`] or drop.
    pub fn insert(&self, slot: usize, card: VirtualCard) -> CardOnReader {
        let reader = self.reader(slot);
        let pid = self.pid();
        let port = FIRST_PORT + slot as u16;
        let log = Arc::new(Mutex::new(CardLog::default()));
        let (connected_tx, connected_rx) = std::sync::mpsc::channel();
        let card_log = Arc::clone(&log);
        let thread = std::thread::Builder::new()
            .name(format!("virtual-card-{slot}"))
            .spawn(move || match connect_in_namespace(pid, port) {
                Ok(stream) => {
                    let placed_at = Instant::now();
                    card_log.lock().unwrap().placed_at = Some(placed_at);
                    let _ = connected_tx.send(stream.try_clone().map_err(|err| err.to_string()));
                    serve(stream, &card, &card_log);
                }
                Err(err) => {
                    let _ = connected_tx.send(Err(err));
                }
            })
            .unwrap();
        let stream = match connected_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => panic!("cannot put a card on {reader}: {err}\n{}", self.log_tail()),
            Err(_) => panic!("putting a card on {reader} timed out\n{}", self.log_tail()),
        };
        CardOnReader {
            reader,
            stream: Some(stream),
            thread: Some(thread),
            log,
        }
    }

    /// Puts a card with `uid` on the reader of `slot` for `hold`, then takes it away.
    pub fn present_card(&self, slot: usize, uid: &[u8], hold: Duration) -> CardLog {
        let card = self.insert(slot, VirtualCard::with_uid(uid));
        std::thread::sleep(hold);
        card.remove()
    }

    /// The end of pcscd's own log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("pcscd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!(
            "--- last lines of pcscd's log ---\n{}",
            lines[start..].join("\n")
        )
    }

    fn launch(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("pcscd.log"))
            .unwrap();
        // `unshare` and `sh` both exec, so the child's PID is pcscd's own.
        let child = Command::new("unshare")
            .args([
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" --foreground --debug --apdu --config \"$1\"",
            ])
            .arg(&self.pcscd)
            .arg(self.dir.path().join("reader.conf.d"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start pcscd under unshare: {err}; {INSTALL_HINT}")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("pcscd exited at start-up ({status})\n{}", self.log_tail());
            }
            if readers_listed(&[self.reader(0), self.reader(1)]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pcscd did not list its readers within 20 s\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal_and_reap(&mut self, signal: Signal) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A virtual contactless card: what it answers to GET DATA.
#[derive(Debug, Clone)]
pub struct VirtualCard {
    uid: Vec<u8>,
    /// When set, GET DATA is answered with this status word alone.
    refuse_with: Option<[u8; 2]>,
}

impl VirtualCard {
    /// A card answering `FF CA 00 00 00` with `uid` and `90 00`.
    pub fn with_uid(uid: &[u8]) -> VirtualCard {
        VirtualCard {
            uid: uid.to_vec(),
            refuse_with: None,
        }
    }

    /// A card (UID `04 00 00 00`) whose reader answers GET DATA with `status` only,
    /// e.g. `[0x6A, 0x81]`.
    pub fn refusing(status: [u8; 2]) -> VirtualCard {
        VirtualCard {
            uid: vec![0x04, 0, 0, 0],
            refuse_with: Some(status),
        }
    }

    /// The ATR a PC/SC reader synthesises: MIFARE Classic 1K for 4-byte UIDs, an
    /// ISO 14443-4 (DESFire-like) one otherwise (PC/SC Part 3).
    fn atr(&self) -> Vec<u8> {
        if self.uid.len() == 4 {
            vec![
                0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06, 0x03, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x6A,
            ]
        } else {
            vec![0x3B, 0x81, 0x80, 0x01, 0x80, 0x80]
        }
    }

    /// The response APDU to `command`.
    fn answer(&self, command: &[u8]) -> Vec<u8> {
        match command {
            [0xFF, 0xCA, 0x00, 0x00, rest @ ..] => {
                if let Some(status) = self.refuse_with {
                    return status.to_vec();
                }
                let le = rest.first().copied().unwrap_or(0) as usize;
                let mut answer = self.uid.clone();
                if le == 0 || le == self.uid.len() {
                    answer.extend([0x90, 0x00]);
                } else if le < self.uid.len() {
                    return vec![0x6C, self.uid.len() as u8];
                } else {
                    answer.extend([0x62, 0x82]);
                }
                answer
            }
            [0xFF, 0xCA, ..] => vec![0x6A, 0x81],
            // ACR122U LED and buzzer: accepted, LED state 00.
            [0xFF, 0x00, 0x40, ..] => vec![0x90, 0x00],
            [0xFF, ..] => vec![0x6D, 0x00],
            _ => vec![0x6E, 0x00],
        }
    }
}

/// What a virtual card saw.
#[derive(Debug, Clone, Default)]
pub struct CardLog {
    /// When its connection to vpcd was made (the card touched the reader).
    pub placed_at: Option<Instant>,
    /// When pcscd first asked for its ATR (pcscd noticed the card and powered it).
    pub powered_at: Option<Instant>,
    /// Every command APDU, with when it arrived.
    pub apdus: Vec<(Instant, Vec<u8>)>,
    /// Every vpcd control byte (00 off, 01 on, 02 reset, 04 ATR), with when it arrived.
    pub controls: Vec<(Instant, u8)>,
}

impl CardLog {
    /// The command APDUs alone.
    pub fn commands(&self) -> Vec<Vec<u8>> {
        self.apdus.iter().map(|(_, apdu)| apdu.clone()).collect()
    }
}

/// A virtual card on a reader; taken away on [`CardOnReader::remove`] or drop.
pub struct CardOnReader {
    /// pcscd's name for the reader.
    reader: String,
    stream: Option<TcpStream>,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<CardLog>>,
}

impl CardOnReader {
    /// What the card saw so far.
    pub fn log(&self) -> CardLog {
        self.log.lock().unwrap().clone()
    }

    /// Takes the card away and returns what it saw, once pcscd reports the reader
    /// empty.
    pub fn remove(mut self) -> CardLog {
        self.take_away();
        self.log()
    }

    /// vpcd checks its socket only when pcscd polls the reader (every 400 ms): a new
    /// card connecting before that poll would replace the old one without the reader
    /// ever looking empty, which no real reader does. So taking a card away waits until
    /// pcscd has seen the reader empty (or is gone).
    fn take_away(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.shutdown(Shutdown::Both);
            wait_until_empty(&self.reader, Duration::from_secs(10));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for CardOnReader {
    fn drop(&mut self) {
        self.take_away();
    }
}

/// Connects to vpcd's `port` from inside pcscd's network namespace. The calling thread
/// stays in that namespace (network namespaces are per thread).
fn connect_in_namespace(pid: u32, port: u16) -> Result<TcpStream, String> {
    let namespace = File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|err| format!("pcscd's network namespace: {err}"))?;
    setns(&namespace, CloneFlags::CLONE_NEWNET)
        .map_err(|err| format!("setns into pcscd's namespace: {err}"))?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&address, Duration::from_secs(2)) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(|err| err.to_string())?;
                return Ok(stream);
            }
            Err(err) if Instant::now() >= deadline => {
                return Err(format!("vpcd on port {port}: {err}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Speaks vpcd's protocol until the connection closes: every message is a 2-byte
/// big-endian length and a payload; a 1-byte payload is a control code (00 power off,
/// 01 power on, 02 reset, 04 "send your ATR"), anything longer a command APDU.
fn serve(mut stream: TcpStream, card: &VirtualCard, log: &Mutex<CardLog>) {
    loop {
        let mut length = [0u8; 2];
        if read_acknowledged(&mut stream, &mut length).is_err() {
            return;
        }
        let mut message = vec![0u8; u16::from_be_bytes(length) as usize];
        if read_acknowledged(&mut stream, &mut message).is_err() {
            return;
        }
        let now = Instant::now();
        let reply = match message.as_slice() {
            [control] => {
                let mut log = log.lock().unwrap();
                log.controls.push((now, *control));
                if *control == 0x04 {
                    log.powered_at.get_or_insert(now);
                    Some(card.atr())
                } else {
                    None
                }
            }
            command => {
                log.lock().unwrap().apdus.push((now, command.to_vec()));
                Some(card.answer(command))
            }
        };
        if let Some(reply) = reply {
            let mut frame = (reply.len() as u16).to_be_bytes().to_vec();
            frame.extend(reply);
            if stream.write_all(&frame).is_err() {
                return;
            }
        }
    }
}

/// `read_exact` with TCP_QUICKACK set before each read (it is not sticky).
fn read_acknowledged(stream: &mut TcpStream, buffer: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        let _ = socket2::SockRef::from(&*stream).set_tcp_quickack(true);
        match stream.read(&mut buffer[filled..])? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(())
}

/// Waits until pcscd reports no card on `reader`; returns early when pcscd cannot be
/// asked (stopped by the test) or after `within`.
fn wait_until_empty(reader: &str, within: Duration) {
    let Ok(context) = pcsc::Context::establish(pcsc::Scope::User) else {
        return;
    };
    let Ok(name) = std::ffi::CString::new(reader) else {
        return;
    };
    let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match context.get_status_change(Duration::from_millis(500), &mut states) {
            Ok(()) => {
                if states[0].event_state().contains(pcsc::State::EMPTY) {
                    return;
                }
                states[0].sync_current_state();
            }
            Err(pcsc::Error::Timeout) => {}
            Err(_) => return,
        }
    }
}

/// True once pcscd lists every reader of `expected`.
fn readers_listed(expected: &[String]) -> bool {
    let Ok(context) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let Ok(names) = context.list_readers_owned() else {
        return false;
    };
    let names: Vec<String> = names
        .iter()
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    expected.iter().all(|reader| names.contains(reader))
}

/// The PID of a live pcscd that owns `/run/pcscd`, if any.
fn running_pcscd() -> Option<u32> {
    let pid: u32 = std::fs::read_to_string("/run/pcscd/pcscd.pid")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "pcscd").then_some(pid)
}

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(tool).exists()))
        .unwrap_or(false)
}
