//! AES-256-GCM under one data key (aws-lc-rs, the crypto library rustls already uses).
//!
//! Every seal draws a fresh random 96-bit nonce (`RandomizedNonceKey`): one data key seals a
//! few versions per certificate and per rotation, far below the 2^32 messages random nonces
//! allow under one key. The associated data binds a sealed key to the item it sits in, so a
//! sealed value copied to another certificate or version does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};

use crate::error::AwsError;

/// Length of a data key: AES-256.
pub(crate) const DATA_KEY_BYTES: usize = 32;

/// One data key, ready to seal and open. The key bytes live inside aws-lc (no `Debug`, never
/// copied out).
pub(crate) struct DataKey {
    id: String,
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey").field("id", &self.id).finish()
    }
}

/// A sealed value: the nonce it was sealed with, and the ciphertext followed by the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub(crate) nonce: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
}

impl DataKey {
    /// The data key `id` from its plaintext bytes (as KMS returned them).
    pub(crate) fn new(id: &str, bytes: &[u8]) -> Result<DataKey, AwsError> {
        if bytes.len() != DATA_KEY_BYTES {
            return Err(AwsError::Sealing(format!(
                "data key {id} is {} bytes, not {DATA_KEY_BYTES}",
                bytes.len()
            )));
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| AwsError::Sealing(format!("data key {id} was refused by AES-256-GCM")))?;
        Ok(DataKey {
            id: id.to_owned(),
            key,
        })
    }

    /// The data key's id (what sealed items name it by).
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext`, bound to `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, AwsError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .map_err(|_| AwsError::Sealing(format!("sealing under data key {}", self.id)))?;
        Ok(Sealed {
            nonce: nonce.as_ref().to_vec(),
            ciphertext: in_out,
        })
    }

    /// Opens `sealed`, which must have been sealed under this key with the same `aad`; `None`
    /// when it was not (another key, another item, or changed).
    pub(crate) fn open(&self, aad: &[u8], sealed: &Sealed) -> Option<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = sealed.nonce.as_slice().try_into().ok()?;
        let mut in_out = sealed.ciphertext.clone();
        let plaintext = self
            .key
            .open_in_place(Nonce::from(&nonce), Aad::from(aad), &mut in_out)
            .ok()?;
        let length = plaintext.len();
        in_out.truncate(length);
        Some(in_out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(id: &str, byte: u8) -> DataKey {
        DataKey::new(id, &[byte; DATA_KEY_BYTES]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_associated_data() {
        let key = key("dk_1", 7);
        let sealed = key
            .seal(b"cert_1/v1", b"-----BEGIN PRIVATE KEY-----")
            .unwrap();
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert!(
            !sealed
                .ciphertext
                .windows(7)
                .any(|window| window == b"PRIVATE"),
            "the ciphertext holds the plaintext"
        );
        assert_eq!(
            key.open(b"cert_1/v1", &sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        // Another item, another key, a flipped bit: nothing opens.
        assert_eq!(key.open(b"cert_2/v1", &sealed), None);
        assert_eq!(self::key("dk_2", 8).open(b"cert_1/v1", &sealed), None);
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(key.open(b"cert_1/v1", &tampered), None);
    }

    #[test]
    fn every_seal_draws_a_new_nonce() {
        let key = key("dk_1", 7);
        let first = key.seal(b"aad", b"same").unwrap();
        let second = key.seal(b"aad", b"same").unwrap();
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
    }

    #[test]
    fn a_data_key_of_the_wrong_length_is_refused_without_showing_it() {
        let error = DataKey::new("dk_short", &[1u8; 16]).unwrap_err();
        assert!(error.to_string().contains("dk_short"), "{error}");
        assert!(!format!("{:?}", key("dk_1", 7)).contains('7'));
    }
}
