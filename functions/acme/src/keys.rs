//! Certificate keys, CSRs, and what the issuer needs from a downloaded chain.
//!
//! Keys come from rcgen on aws-lc-rs, which generates both ECDSA P-256 and RSA-2048 keys (ring
//! cannot generate RSA; aws-lc-rs can), serialised as PKCS#8 PEM.

use edgecert_core::Hostname;
use edgecert_core::model::KeyType;
use rcgen::{
    CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
    PublicKeyData as _, RsaKeySize,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use time::OffsetDateTime;

use crate::error::{AcmeError, Result};

/// A new private key of `key_type`.
pub(crate) fn generate(key_type: KeyType) -> Result<KeyPair> {
    Ok(match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?,
    })
}

/// Reads a stored PKCS#8 PEM key.
pub(crate) fn parse(private_key_pem: &str) -> Result<KeyPair> {
    Ok(KeyPair::from_pem(private_key_pem)?)
}

/// A DER CSR for `names` signed by `key`. The subject is left empty: CAs take the names from
/// the subject alternative names only.
pub(crate) fn csr<'a>(
    names: impl IntoIterator<Item = &'a Hostname>,
    key: &KeyPair,
) -> Result<Vec<u8>> {
    let names: Vec<String> = names.into_iter().map(ToString::to_string).collect();
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = DistinguishedName::new();
    Ok(params.serialize_request(key)?.der().to_vec())
}

/// What the issuer records about the leaf of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// DER of the leaf certificate (for revocation).
    pub(crate) der: Vec<u8>,
    /// Start of validity.
    pub(crate) not_before: OffsetDateTime,
    /// End of validity.
    pub(crate) not_after: OffsetDateTime,
    /// DER SubjectPublicKeyInfo, to check the leaf belongs to our key.
    pub(crate) public_key_info: Vec<u8>,
}

impl Leaf {
    /// Whether the leaf certifies `key`.
    pub(crate) fn matches(&self, key: &KeyPair) -> bool {
        self.public_key_info == key.subject_public_key_info()
    }
}

/// The first certificate of a PEM chain, read.
pub(crate) fn leaf(chain_pem: &str) -> Result<Leaf> {
    let der = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or_else(|| AcmeError::Certificate("the chain holds no certificate".to_owned()))?
        .map_err(|error| AcmeError::Certificate(format!("PEM: {error}")))?;
    let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|error| AcmeError::Certificate(format!("X.509: {error}")))?;
    let validity = certificate.validity();
    let timestamp = |time: &x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(time.timestamp())
            .map_err(|error| AcmeError::Certificate(format!("validity date: {error}")))
    };
    Ok(Leaf {
        not_before: timestamp(&validity.not_before)?,
        not_after: timestamp(&validity.not_after)?,
        public_key_info: certificate.public_key().raw.to_vec(),
        der: der.as_ref().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType};
    use x509_parser::prelude::FromDer as _;

    use super::*;

    fn self_signed_chain(key: &KeyPair) -> String {
        let mut params = CertificateParams::new(vec!["a.example.com".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "a");
        params.self_signed(key).unwrap().pem()
    }

    #[test]
    fn both_key_types_generate_and_round_trip_through_pem() {
        for key_type in [KeyType::EcdsaP256, KeyType::Rsa2048] {
            let key = generate(key_type).unwrap();
            let pem = key.serialize_pem();
            assert!(
                pem.starts_with("-----BEGIN PRIVATE KEY-----"),
                "{key_type:?}"
            );
            let again = parse(&pem).unwrap();
            assert_eq!(
                again.subject_public_key_info(),
                key.subject_public_key_info()
            );
        }
    }

    #[test]
    fn the_leaf_gives_validity_and_matches_only_its_key() {
        let key = generate(KeyType::EcdsaP256).unwrap();
        let leaf = leaf(&self_signed_chain(&key)).unwrap();
        assert!(leaf.not_after > leaf.not_before);
        assert!(leaf.matches(&key));
        assert!(!leaf.matches(&generate(KeyType::EcdsaP256).unwrap()));
        assert!(super::leaf("not a chain").is_err());
    }

    #[test]
    fn csrs_carry_every_name() {
        let key = generate(KeyType::EcdsaP256).unwrap();
        let names = [
            Hostname::parse_certificate_name("*.example.com").unwrap(),
            Hostname::parse_certificate_name("example.com").unwrap(),
        ];
        let der = csr(&names, &key).unwrap();
        let (_, request) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        let text = format!(
            "{:?}",
            request.requested_extensions().unwrap().collect::<Vec<_>>()
        );
        assert!(
            text.contains("*.example.com") && text.contains("example.com"),
            "{text}"
        );
    }
}
