//! **Boundary.** E-mail for the escalation ladder: SMTP with STARTTLS required (lettre,
//! rustls), one message per outbox row. The message carries a `Message-ID` made from the
//! row, so a copy sent again after a crash between the server's answer and its record is
//! recognisable as the same message.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};

use crate::config::lending::SmtpConfig;

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The setup is wrong (CA file, addresses): fix the config.
    #[error("e-mail setup ([lending.smtp]): {0}")]
    Setup(String),
    /// Try again later (connection, timeout, 4xx).
    #[error("the mail server {server} did not take the message now: {detail}")]
    Transient {
        /// Host.
        server: String,
        /// What happened.
        detail: String,
    },
    /// The server refused for good (5xx), or TLS could not be agreed.
    #[error("the mail server {server} refused the message: {detail}")]
    Refused {
        /// Host.
        server: String,
        /// What happened.
        detail: String,
    },
}

impl MailError {
    /// True when a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient { .. })
    }
}

/// Sends the ladder's e-mails.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
    server: String,
}

impl Mailer {
    /// Sets up the transport (nothing is sent yet). STARTTLS is required: the server must
    /// offer it and its certificate must be valid for `server`.
    pub fn new(config: &SmtpConfig) -> Result<Mailer, MailError> {
        let mut tls = TlsParameters::builder(config.server.clone());
        if let Some(file) = &config.ca_file {
            let pem = std::fs::read(file).map_err(|err| {
                MailError::Setup(format!("cannot read ca-file {}: {err}", file.display()))
            })?;
            let certificate = Certificate::from_pem(&pem).map_err(|err| {
                MailError::Setup(format!(
                    "ca-file {} holds no PEM certificate: {err}",
                    file.display()
                ))
            })?;
            tls = tls.add_root_certificate(certificate);
        }
        let tls = tls
            .build_rustls()
            .map_err(|err| MailError::Setup(format!("TLS setup failed: {err}")))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.server)
            .port(config.port)
            .tls(Tls::Required(tls))
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: config.from.clone(),
            server: config.server.clone(),
        })
    }

    /// Sends one message; `key` names the outbox row (the `Message-ID`).
    pub async fn send(
        &self,
        key: &str,
        to: &[String],
        subject: &str,
        body: &str,
    ) -> Result<(), MailError> {
        let from = self
            .from
            .parse()
            .map_err(|err| MailError::Setup(format!("from {:?}: {err}", self.from)))?;
        let digest = Sha256::digest(format!("{key}\n{subject}\n{body}").as_bytes());
        let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let mut message = Message::builder()
            .from(from)
            .subject(subject)
            .message_id(Some(format!("<badgedock.{key}.{tag}@{}>", self.server)))
            .header(ContentType::TEXT_PLAIN);
        for address in to {
            let mailbox = address
                .parse()
                .map_err(|err| MailError::Setup(format!("to {address:?}: {err}")))?;
            message = message.to(mailbox);
        }
        let message = message
            .body(body.to_string())
            .map_err(|err| MailError::Setup(format!("cannot build the message: {err}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(err) => {
                let detail = describe(&err);
                if err.is_permanent() || err.is_tls() {
                    Err(MailError::Refused {
                        server: self.server.clone(),
                        detail,
                    })
                } else {
                    Err(MailError::Transient {
                        server: self.server.clone(),
                        detail,
                    })
                }
            }
        }
    }
}

/// The error and its sources in one line (lettre's credentials never appear in them).
fn describe(err: &lettre::transport::smtp::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
