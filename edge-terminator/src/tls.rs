//! TLS: the rustls server configuration (TLS 1.2 and 1.3 on aws-lc-rs, ALPN `h2` and
//! `http/1.1`, resumption by tickets and session ids), the synchronous certificate resolver
//! reading [`EdgeCache`], and turning vault material into a [`CertifiedKey`].

use std::fmt;
use std::sync::Arc;

use edgecert_core::ports::CertificateMaterial;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, ServerConfig, ServerSessionMemoryCache,
};
use rustls::sign::CertifiedKey;

use crate::cache::EdgeCache;
use crate::config::TerminatorConfig;
use crate::error::Result;

/// ALPN protocol ids offered to clients, preferred first.
pub(crate) const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Chooses the certificate from memory only: never blocks, never does I/O. Names it does not
/// hold were handled (loaded or issued on demand, or refused) before the handshake got here.
pub(crate) struct SniResolver {
    cache: Arc<EdgeCache>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.cache.certificate_for(client_hello.server_name()?)
    }
}

/// The one server configuration every handshake uses.
pub(crate) fn server_config(
    cache: Arc<EdgeCache>,
    config: &TerminatorConfig,
) -> Result<Arc<ServerConfig>> {
    let mut server = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { cache }));
    server.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    // Resumption: stateless tickets (TLS 1.3 and 1.2) plus a bounded id cache for TLS 1.2
    // clients without ticket support. No 0-RTT: early data can be replayed.
    if config.tls_resumption {
        server.ticketer = aws_lc_rs::Ticketer::new()?;
        server.session_storage = ServerSessionMemoryCache::new(config.session_cache_entries);
    } else {
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
    }
    server.max_early_data_size = 0;
    // A resumed session must be for the same name: rustls checks SNI on resumption.
    Ok(Arc::new(server))
}

/// Parses a vault item into what rustls serves; checks that the key matches the leaf.
/// Errors name what is wrong, never the key material.
pub(crate) fn certified_key(
    material: &CertificateMaterial,
) -> std::result::Result<Arc<CertifiedKey>, String> {
    let chain_pem = material
        .chain_pem
        .as_deref()
        .ok_or_else(|| "the material has no certificate chain yet".to_owned())?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|error| format!("the chain is not valid PEM: {error}"))?;
    if chain.is_empty() {
        return Err("the chain holds no certificate".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(material.private_key_pem.expose().as_bytes())
        .map_err(|_| "the private key is not valid PEM".to_owned())?;
    let certified = CertifiedKey::from_der(chain, key, &aws_lc_rs::default_provider())
        .map_err(|error| format!("the key does not fit the certificate: {error}"))?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use edgecert_core::model::SecretString;

    use super::*;

    #[test]
    fn material_becomes_a_certified_key_only_when_key_and_chain_match() {
        let first = rcgen::generate_simple_self_signed(vec!["a.example.com".to_owned()]).unwrap();
        let second = rcgen::generate_simple_self_signed(vec!["b.example.com".to_owned()]).unwrap();
        let good = CertificateMaterial {
            chain_pem: Some(first.cert.pem()),
            private_key_pem: SecretString::new(first.signing_key.serialize_pem()),
        };
        assert!(certified_key(&good).is_ok());

        let mismatched = CertificateMaterial {
            chain_pem: Some(first.cert.pem()),
            private_key_pem: SecretString::new(second.signing_key.serialize_pem()),
        };
        let error = certified_key(&mismatched).unwrap_err();
        assert!(!error.contains("PRIVATE KEY"), "{error}");

        let pending = CertificateMaterial {
            chain_pem: None,
            private_key_pem: SecretString::new(first.signing_key.serialize_pem()),
        };
        assert!(certified_key(&pending).is_err());
    }
}
