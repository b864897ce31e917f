//! TLS for [`crate::serve`]: a certificate chain and key loaded from PEM files into a rustls
//! server configuration that offers HTTP/2 and HTTP/1.1 over ALPN.
//!
//! ```no_run
//! # fn main() -> Result<(), herald_hub::TlsError> {
//! let tls = herald_hub::TlsConfig::from_pem_files("cert.pem".as_ref(), "key.pem".as_ref())?;
//! let mut config = herald_hub::HubConfig::default();
//! config.tls = Some(tls);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The protocols offered over ALPN, preferred first: HTTP/2 multiplexes every stream of a page
/// over one connection (no per-domain connection limit for `EventSource`), HTTP/1.1 for the rest.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A server certificate chain and its private key, ready for [`crate::serve`] (set
/// [`crate::HubConfig::tls`]). Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: TlsAcceptor,
}

/// Why [`TlsConfig::from_pem_files`] failed; the message names the file and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct TlsError {
    path: PathBuf,
    reason: String,
}

impl TlsError {
    fn new(path: &Path, reason: impl fmt::Display) -> Self {
        Self {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// The file at fault.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TlsConfig {
    /// Loads a PEM certificate chain (leaf first) from `cert` and a PEM private key (PKCS#8,
    /// PKCS#1 or SEC1) from `key`, and checks that they belong together.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_pem = std::fs::read(cert).map_err(|err| TlsError::new(cert, err))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| TlsError::new(cert, format_args!("not a PEM certificate: {err}")))?;
        if chain.is_empty() {
            return Err(TlsError::new(
                cert,
                "no certificate in it (expected a PEM block BEGIN CERTIFICATE)",
            ));
        }
        let key_pem = std::fs::read(key).map_err(|err| TlsError::new(key, err))?;
        let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| {
            TlsError::new(
                key,
                format_args!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {err}"),
            )
        })?;
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|err| {
                TlsError::new(
                    key,
                    format_args!("does not fit the certificate in {}: {err}", cert.display()),
                )
            })?;
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub(super) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn", &["h2", "http/1.1"])
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cli/tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn loads_the_test_certificate() {
        TlsConfig::from_pem_files(&fixture("cert.pem"), &fixture("key.pem")).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let cases = [
            (
                missing.clone(),
                fixture("key.pem"),
                "missing.pem",
                "No such file",
            ),
            (
                garbage.clone(),
                fixture("key.pem"),
                "garbage.pem",
                "no certificate",
            ),
            (
                fixture("cert.pem"),
                garbage.clone(),
                "garbage.pem",
                "not a PEM private key",
            ),
            // A certificate where the key should be.
            (
                fixture("cert.pem"),
                fixture("cert.pem"),
                "cert.pem",
                "not a PEM private key",
            ),
            (
                fixture("cert.pem"),
                fixture("other-key.pem"),
                "other-key.pem",
                "does not fit",
            ),
        ];
        for (cert, key, file, problem) in cases {
            let err = TlsConfig::from_pem_files(&cert, &key)
                .unwrap_err()
                .to_string();
            assert!(err.contains(file) && err.contains(problem), "{err}");
        }
    }
}
