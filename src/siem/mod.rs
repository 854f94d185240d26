//! The SIEM forwarder: every audit row, and a periodic station health line, to a syslog
//! receiver over UDP (RFC 5426), TCP (RFC 6587 octet counting) or TLS (RFC 5425, rustls),
//! in RFC 5424 or CEF.
//!
//! It reads the audit table through a durable cursor (`audit_cursors`, name `siem`): a
//! row is sent, then the cursor moves past it, so a restart or a receiver outage loses
//! nothing and repeats at most the one row in flight at a kill -9. It runs as its own
//! task beside the engine and never on the tap path; when the receiver is down it
//! retries with backoff while rows wait in the store (retention keeps them, see
//! `Store::prune_audit`). UDP has no delivery feedback: use TCP or TLS where loss
//! matters. On a stream, a receiver that went away (its FIN is readable) is noticed
//! before the next line is written, and the line waits for a new connection; syslog
//! itself has no acknowledgement, so a line written in the instant the receiver dies
//! can still be lost.

pub mod format;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::config::{SiemConfig, SiemFormat, SiemTransport};
use crate::domain::Timestamp;
use crate::store::Store;
use format::{Health, Origin};

/// The cursor's name in the store.
pub const CURSOR: &str = "siem";

/// How many rows are read from the store at a time.
const BATCH: usize = 200;

/// How often the audit is polled for new rows.
const POLL: Duration = Duration::from_millis(500);

/// Why a line could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SiemError {
    /// Connecting or sending failed.
    #[error("cannot send to the syslog receiver {target} over {transport}: {source}")]
    Io {
        /// host:port.
        target: String,
        /// udp/tcp/tls.
        transport: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS set-up (CA file).
    #[error("cannot set up TLS for the syslog receiver {target}: {message}; check siem.ca-file")]
    Tls {
        /// host:port.
        target: String,
        /// Why.
        message: String,
    },
}

/// A connection to the receiver.
enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

fn transport_name(transport: SiemTransport) -> &'static str {
    match transport {
        SiemTransport::Udp => "udp",
        SiemTransport::Tcp => "tcp",
        SiemTransport::Tls => "tls",
    }
}

fn tls_connector(config: &SiemConfig) -> Result<tokio_rustls::TlsConnector, SiemError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    let error = |message: String| SiemError::Tls {
        target: config.target.clone(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
            for certificate in certificates {
                let certificate =
                    certificate.map_err(|e| error(format!("{}: {e}", path.display())))?;
                roots
                    .add(certificate)
                    .map_err(|e| error(format!("{}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(client)))
}

impl Connection {
    async fn open(config: &SiemConfig) -> Result<Connection, SiemError> {
        let io = |source| SiemError::Io {
            target: config.target.clone(),
            transport: transport_name(config.transport),
            source,
        };
        let address = (config.host.as_str(), config.port);
        match config.transport {
            SiemTransport::Udp => {
                let local = if config.host.contains(':') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let socket = UdpSocket::bind(local).await.map_err(io)?;
                socket.connect(address).await.map_err(io)?;
                Ok(Connection::Udp(socket))
            }
            SiemTransport::Tcp => Ok(Connection::Tcp(
                TcpStream::connect(address).await.map_err(io)?,
            )),
            SiemTransport::Tls => {
                let connector = tls_connector(config)?;
                let tcp = TcpStream::connect(address).await.map_err(io)?;
                let name = rustls::pki_types::ServerName::try_from(config.server_name.clone())
                    .map_err(|e| SiemError::Tls {
                        target: config.target.clone(),
                        message: e.to_string(),
                    })?;
                let stream = connector.connect(name, tcp).await.map_err(io)?;
                Ok(Connection::Tls(Box::new(stream)))
            }
        }
    }

    /// Sends one message: a datagram, or `LEN SP MSG` on a stream.
    async fn send(&mut self, message: &str) -> std::io::Result<()> {
        match self {
            Connection::Udp(socket) => socket.send(message.as_bytes()).await.map(|_| ()),
            Connection::Tcp(stream) => {
                peer_still_there(stream)?;
                let framed = format!("{} {message}", message.len());
                stream.write_all(framed.as_bytes()).await?;
                stream.flush().await
            }
            Connection::Tls(stream) => {
                peer_still_there(stream.get_ref().0)?;
                let framed = format!("{} {message}", message.len());
                stream.write_all(framed.as_bytes()).await?;
                stream.flush().await
            }
        }
    }
}

/// A syslog receiver never sends: anything readable on the socket is its end of the
/// connection (FIN, or a TLS close_notify). A write into such a connection would still
/// succeed locally and be lost, so the line waits for a new connection instead.
fn peer_still_there(stream: &TcpStream) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    match stream.try_read(&mut byte) {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(error) => Err(error),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the receiver closed the connection",
        )),
    }
}

/// The forwarder task's state.
pub struct Forwarder {
    store: Store,
    config: SiemConfig,
    origin: Origin,
    connection: Option<Connection>,
}

impl Forwarder {
    /// A forwarder for `station` (its name as the screen shows it).
    pub fn new(store: Store, config: SiemConfig, station: &str) -> Forwarder {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "-".to_string());
        Forwarder {
            store,
            config,
            origin: Origin {
                hostname,
                procid: std::process::id(),
                station: station.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            connection: None,
        }
    }

    /// Forwards until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        let mut next_health = self
            .config
            .health_interval
            .map(|interval| tokio::time::Instant::now() + interval.min(Duration::from_secs(5)));
        loop {
            let result = self.forward_pending().await;
            let pause = match result {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    if let Some(at) = next_health.filter(|at| *at <= tokio::time::Instant::now()) {
                        if let Err(error) = self.send_health().await {
                            tracing::warn!(%error, "station health line not sent");
                        }
                        next_health = self.config.health_interval.map(|i| at + i);
                    }
                    POLL
                }
                Err(error) => {
                    self.connection = None;
                    tracing::warn!(%error, retry_in_s = backoff.as_secs(), "SIEM forwarding paused; the audit rows wait in the store");
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    pause
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut Connection, SiemError> {
        if self.connection.is_none() {
            self.connection = Some(Connection::open(&self.config).await?);
            tracing::info!(target = %self.config.target, transport = transport_name(self.config.transport), "connected to the syslog receiver");
        }
        self.connection.as_mut().ok_or_else(|| SiemError::Io {
            target: self.config.target.clone(),
            transport: transport_name(self.config.transport),
            source: std::io::Error::other("no connection"),
        })
    }

    async fn send_line(&mut self, line: &str) -> Result<(), SiemError> {
        let target = self.config.target.clone();
        let transport = transport_name(self.config.transport);
        self.connection()
            .await?
            .send(line)
            .await
            .map_err(|source| SiemError::Io {
                target,
                transport,
                source,
            })
    }

    /// Sends every row past the cursor, moving the cursor after each.
    async fn forward_pending(&mut self) -> Result<(), SiemError> {
        loop {
            let cursor = match self.store.audit_cursor(CURSOR).await {
                Ok(cursor) => cursor.unwrap_or(0),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the SIEM cursor");
                    return Ok(());
                }
            };
            let records = match self.store.audit_after(cursor, BATCH).await {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the audit for the SIEM");
                    return Ok(());
                }
            };
            if records.is_empty() {
                return Ok(());
            }
            for record in records {
                let line = match self.config.format {
                    SiemFormat::Rfc5424 => format::rfc5424(&self.origin, &record),
                    SiemFormat::Cef => format::cef(&self.origin, &record),
                };
                self.send_line(&line).await?;
                if let Err(error) = self.store.set_audit_cursor(CURSOR, record.seq).await {
                    tracing::warn!(%error, "cannot move the SIEM cursor");
                    return Ok(());
                }
            }
        }
    }

    async fn send_health(&mut self) -> Result<(), SiemError> {
        let outbox_pending = self.store.pending_count().await.unwrap_or(0);
        let head = self.store.recent_audit_head().await.unwrap_or(0);
        let cursor = self
            .store
            .audit_cursor(CURSOR)
            .await
            .ok()
            .flatten()
            .unwrap_or(0);
        let health = Health {
            at: Timestamp(chrono::Utc::now().timestamp_millis()).0,
            outbox_pending,
            audit_head: head,
            siem_backlog: (head - cursor).max(0),
        };
        let line = format::health(&self.origin, &health, self.config.format == SiemFormat::Cef);
        self.send_line(&line).await
    }
}
