//! Connecting to PostgreSQL, and telling what it said ([`pg`]). TLS as libpq users set it:
//! `sslmode` in the `url` (`disable`, `prefer` — the default —, `require`), and the pipeline
//! options `sslRootCert`
//! (the CA that signed the server's certificate; default: the system's CA store), `sslCert` and
//! `sslKey` (a client certificate, PEM).
//!
//! Stricter than libpq on purpose: whenever TLS is used the server's certificate is verified,
//! chain and host name (libpq's `verify-full`). A `prefer` connection to a server without TLS
//! goes on in plain TCP, as libpq's does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode;
use postgres::{Client, NoTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// `sslRootCert`, `sslCert`, `sslKey`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates trusted to sign the server's (instead of the system's store).
    pub root_cert: Option<PathBuf>,
    /// The client's certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// The client's private key, PEM.
    pub key: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// The rustls configuration for `files`.
fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &files.root_cert {
        Some(path) => {
            let pem = read(path, "sslRootCert")?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("sslRootCert {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslRootCert {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "sslRootCert {} holds no PEM certificate",
                    path.display()
                ));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A broken certificate in the system store is not this connection's problem.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (&files.cert, &files.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let pem = read(cert, "sslCert")?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslCert {}: {e}", cert.display()))?;
            let key_pem = read(key, "sslKey")?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| format!("sslKey {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("sslCert/sslKey: {e}"))
        }
        _ => Err("sslCert and sslKey go together".into()),
    }
}

/// Connects with `config` (its `sslmode`) and `files`.
pub fn connect(config: &postgres::Config, files: &TlsFiles) -> Result<Client, String> {
    if config.get_ssl_mode() == SslMode::Disable {
        return config.connect(NoTls).map_err(pg);
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(files)?);
    config.connect(tls).map_err(pg)
}

/// What PostgreSQL said: the server's message and detail when it answered, else the client's
/// error.
pub(super) fn pg(e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => match d.detail() {
            Some(detail) => format!("{}: {detail}", d.message()),
            None => d.message().to_owned(),
        },
        None => {
            use std::error::Error as _;
            match e.source() {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_empty_certificate_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let err = client_config(&TlsFiles {
            root_cert: Some(empty.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = client_config(&TlsFiles {
            root_cert: Some(dir.path().join("missing.pem")),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
        let err = client_config(&TlsFiles {
            cert: Some(empty),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("go together"), "{err}");
    }
}
