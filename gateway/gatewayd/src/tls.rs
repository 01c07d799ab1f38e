//! TLS for the `tls` and `wss` listeners: rustls with the `ring` provider, certificate and key read from
//! the PEM files named in `[sip.tls]`. Loaded by `--check-config` too, so a bad certificate is caught
//! before a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use edge_config::Config;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS configuration cannot be used. The operator is at fault: the message names the file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{}: {what}: {reason}", file.display())]
    File {
        file: PathBuf,
        what: &'static str,
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("{} + {}: certificate and key cannot be used together: {reason}", certificate.display(), key.display())]
    Pair {
        certificate: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// TLS server configurations for the listeners, or `None` if none needs one.
#[derive(Debug, Clone)]
pub(crate) struct TlsConfigs {
    /// SIP over TLS: no ALPN.
    pub(crate) sip: Arc<ServerConfig>,
    /// Secure WebSocket: ALPN `http/1.1` (the WebSocket handshake is HTTP/1.1).
    pub(crate) wss: Arc<ServerConfig>,
}

/// Loads `[sip.tls]` if any listener needs it.
pub(crate) fn load(config: &Config) -> Result<Option<TlsConfigs>, TlsError> {
    let Some(tls) = &config.sip.tls else {
        return Ok(None);
    };
    if !config.sip.listen.iter().any(|l| l.transport.needs_certificate()) {
        return Ok(None);
    }
    let certs = read_certificates(&tls.certificate)?;
    let key = read_key(&tls.private_key)?;
    let pair_err = |e: rustls::Error| TlsError::Pair {
        certificate: tls.certificate.clone(),
        key: tls.private_key.clone(),
        reason: e.to_string(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let sip = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pair_err)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(pair_err)?;
    let mut wss = sip.clone();
    wss.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsConfigs {
        sip: Arc::new(sip),
        wss: Arc::new(wss),
    }))
}

fn read_certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::File {
        file: file.to_owned(),
        what: "cannot read certificate chain",
        reason,
    };
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE section in the file".into()));
    }
    Ok(certs)
}

fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(file).map_err(|e| TlsError::File {
        file: file.to_owned(),
        what: "cannot read private key",
        reason: e.to_string(),
    })
}

/// How to reach a TLS trunk: our client configuration and the name its certificate must carry.
#[derive(Clone)]
pub(crate) struct TrunkTls {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) server_name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for TrunkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The client TLS for each `tls` trunk (by trunk index; `None` for the others): its trust anchors
/// and the name its certificate must carry (`server_name`, else its DNS name or IP address).
pub(crate) fn trunks(config: &Config) -> Result<Vec<Option<TrunkTls>>, TlsError> {
    config.trunks.iter().map(trunk).collect()
}

fn trunk(t: &edge_config::routing::Trunk) -> Result<Option<TrunkTls>, TlsError> {
    if t.transport != edge_config::Transport::Tls {
        return Ok(None);
    }
    // Config validation requires ca_certificate for a tls trunk.
    let Some(ca) = &t.ca_certificate else {
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(ca)? {
        roots.add(cert).map_err(|e| TlsError::File {
            file: ca.clone(),
            what: "cannot use CA certificate",
            reason: e.to_string(),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::File {
            file: ca.clone(),
            what: "cannot build TLS client",
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = match (&t.server_name, &t.address) {
        (Some(name), _) => name.as_str().to_owned(),
        (None, edge_config::routing::Host::Name(n)) => n.clone(),
        (None, edge_config::routing::Host::Ip(ip)) => ip.to_string(),
    };
    let server_name = rustls::pki_types::ServerName::try_from(name).map_err(|e| TlsError::File {
        file: ca.clone(),
        what: "invalid server_name for a tls trunk",
        reason: e.to_string(),
    })?;
    Ok(Some(TrunkTls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        server_name,
    }))
}
