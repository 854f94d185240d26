//! Connecting to the fleet store and migrating its schema.

use std::sync::Arc;

use tokio_postgres::Client;

use crate::config::{FleetConfig, FleetTls};

mod embedded {
    refinery::embed_migrations!("fleet/migrations");
}

/// Why the fleet store could not be used. Messages name the server and what to do;
/// they never carry the password.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot use {path} for the fleet connection: {reason}")]
    Pem {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificates.
    #[error("cannot set up TLS for the fleet store: {0}")]
    Tls(#[from] rustls::Error),
    /// PostgreSQL refused or could not be reached.
    #[error("fleet store {url}: {source}")]
    Postgres {
        /// The URL (it holds no password).
        url: String,
        /// What PostgreSQL said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A schema migration failed.
    #[error(
        "cannot migrate the fleet store {url}: {source}; run `badgedock fleet migrate` as the \
         database owner after fleet/roles.sql"
    )]
    Migrate {
        /// The URL.
        url: String,
        /// What refinery said.
        #[source]
        source: refinery::Error,
    },
}

fn pem_error(path: &std::path::Path, reason: impl std::fmt::Display) -> FleetError {
    FleetError::Pem {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn tls_config(
    ca_file: &std::path::Path,
    client_cert: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<rustls::ClientConfig, FleetError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| pem_error(ca_file, e))? {
        roots.add(cert.map_err(|e| pem_error(ca_file, e))?)?;
    }
    if roots.is_empty() {
        return Err(pem_error(ca_file, "no PEM certificate in it"));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    Ok(match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let certs = CertificateDer::pem_file_iter(cert_file)
                .map_err(|e| pem_error(cert_file, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error(cert_file, e))?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| pem_error(key_file, e))?;
            builder.with_client_auth_cert(certs, key)?
        }
    })
}

/// Connects to the fleet store. The connection's driver runs in a task of its own
/// (tokio-postgres needs one per connection); it ends when the client is dropped.
pub async fn connect(config: &FleetConfig) -> Result<Client, FleetError> {
    let pg = config.pg_config();
    let error = |source| FleetError::Postgres {
        url: config.url.clone(),
        source,
    };
    match &config.tls {
        FleetTls::Disabled => {
            let (client, connection) = pg.connect(tokio_postgres::NoTls).await.map_err(error)?;
            tokio::spawn(drive(connection, config.url.clone()));
            Ok(client)
        }
        FleetTls::Required {
            ca_file,
            client_cert,
        } => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                ca_file,
                client_cert.as_ref(),
            )?);
            let (client, connection) = pg.connect(tls).await.map_err(error)?;
            tokio::spawn(drive(connection, config.url.clone()));
            Ok(client)
        }
    }
}

async fn drive<F>(connection: F, url: String)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(err) = connection.await {
        tracing::debug!(url = %url, cause = %err, "fleet connection ended");
    }
}

/// Brings the fleet store's schema up to date (`fleet/migrations/`); returns the
/// migrations applied now. Run as the database owner (`badgedock fleet migrate`).
pub async fn migrate(client: &mut Client, url: &str) -> Result<Vec<String>, FleetError> {
    let report = embedded::migrations::runner()
        .run_async(client)
        .await
        .map_err(|source| FleetError::Migrate {
            url: url.to_string(),
            source,
        })?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}
