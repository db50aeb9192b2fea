//! ACME Renewal Information (ARI, RFC 9773): the CA's suggested renewal window for one
//! certificate, asked for with the certificate's identifier (its Authority Key Identifier and
//! serial number, both base64url).
//!
//! A CA without `renewalInfo` in its directory (Pebble 2.4) answers nothing and the renewal
//! policy's own schedule applies. So does a CA that fails to answer: ARI refines when to
//! renew, it never stops a renewal.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edgecert_core::{RenewalSuggestion, RenewalWindow};
use instant_acme::{Account, CertificateIdentifier};
use x509_parser::extensions::ParsedExtension;

use crate::error::{AcmeError, Result};

/// The ARI identifier of a DER certificate: `base64url(AKI keyIdentifier) "." base64url(serial)`,
/// the serial as its DER content octets (leading zero included), as RFC 9773 section 4.1 asks.
pub(crate) fn certificate_id(leaf_der: &[u8]) -> Result<CertificateIdentifier<'static>> {
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf_der)
        .map_err(|error| AcmeError::Certificate(format!("X.509: {error}")))?;
    let key_identifier = certificate
        .iter_extensions()
        .find_map(|extension| match extension.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        })
        .ok_or_else(|| {
            AcmeError::Certificate("the certificate has no authority key identifier".to_owned())
        })?;
    Ok(CertificateIdentifier {
        authority_key_identifier: Cow::Owned(URL_SAFE_NO_PAD.encode(key_identifier)),
        serial: Cow::Owned(URL_SAFE_NO_PAD.encode(certificate.tbs_certificate.raw_serial())),
    })
}

/// The identifier `AKI.serial` in its text form, as certificates record it.
pub(crate) fn identifier(ari_id: &str) -> Option<CertificateIdentifier<'static>> {
    let (authority_key_identifier, serial) = ari_id.split_once('.')?;
    if authority_key_identifier.is_empty() || serial.is_empty() || serial.contains('.') {
        return None;
    }
    Some(CertificateIdentifier {
        authority_key_identifier: Cow::Owned(authority_key_identifier.to_owned()),
        serial: Cow::Owned(serial.to_owned()),
    })
}

/// The CA's window for the certificate with ARI identifier `ari_id`, or `None` when the CA
/// offers no ARI or could not tell (logged).
pub(crate) async fn suggestion(account: &Account, ari_id: &str) -> Option<RenewalSuggestion> {
    let Some(id) = identifier(ari_id) else {
        tracing::warn!(ari_id, "not an ARI certificate identifier");
        return None;
    };
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => Some(RenewalSuggestion {
            window: RenewalWindow {
                start: info.suggested_window.start,
                end: info.suggested_window.end,
            },
            retry_after: time::Duration::try_from(retry_after).unwrap_or(time::Duration::ZERO),
        }),
        Err(instant_acme::Error::Unsupported(_)) => None,
        Err(error) => {
            tracing::warn!(%error, certificate_id = %id, "ARI renewal info unavailable");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, IsCa, Issuer, KeyIdMethod, KeyPair, SerialNumber,
    };

    use super::*;

    #[test]
    fn the_identifier_is_the_aki_and_the_serial_in_base64url() {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_identifier_method = KeyIdMethod::PreSpecified(vec![0xfb, 0xff, 0x01, 0x02]);
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["a.example.com".to_owned()]).unwrap();
        leaf.use_authority_key_identifier_extension = true;
        // A serial whose high bit is set is encoded with a leading zero octet.
        leaf.serial_number = Some(SerialNumber::from_slice(&[0x87, 0x65, 0x43, 0x21]));
        let der = leaf
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap()
            .der()
            .to_vec();
        let id = certificate_id(&der).unwrap();
        assert_eq!(id.authority_key_identifier, "-_8BAg");
        assert_eq!(id.serial, "AIdlQyE");
        assert_eq!(id.to_string(), "-_8BAg.AIdlQyE");
        assert_eq!(identifier("-_8BAg.AIdlQyE"), Some(id));
        assert_eq!(identifier("no-dot"), None);
        assert_eq!(identifier("a.b.c"), None);
    }
}
