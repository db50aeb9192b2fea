//! Throwaway certificates for benchmarks: a CA and leaves signed by it, ECDSA P-256 (what
//! EdgeCert issues) or RSA-2048 (for reference), as PEM for the store, the vault and the peers.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize,
};

/// The leaf's key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// ECDSA on P-256 with SHA-256: EdgeCert's default.
    EcdsaP256,
    /// RSA, 2048 bits.
    Rsa2048,
}

impl KeyKind {
    /// As shown in tables.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::Rsa2048 => "RSA-2048",
        }
    }
}

/// A leaf certificate: its chain (leaf, then the CA) and private key, PEM.
#[derive(Clone)]
pub struct Leaf {
    /// Leaf then issuer, PEM.
    pub chain_pem: String,
    /// PKCS#8 private key, PEM. Throwaway: generated per run, never written outside the run's
    /// temporary directory.
    pub key_pem: String,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf").finish_non_exhaustive()
    }
}

impl Leaf {
    /// Writes `<stem>.crt` (chain) and `<stem>.key` into `dir`, and a combined `<stem>.pem`
    /// (chain then key, what haproxy reads); returns the three paths.
    pub fn write(&self, dir: &Path, stem: &str) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
        let chain = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        let combined = dir.join(format!("{stem}.pem"));
        std::fs::write(&chain, &self.chain_pem)
            .with_context(|| format!("writing {}", chain.display()))?;
        std::fs::write(&key, &self.key_pem)
            .with_context(|| format!("writing {}", key.display()))?;
        std::fs::write(&combined, format!("{}{}", self.chain_pem, self.key_pem))
            .with_context(|| format!("writing {}", combined.display()))?;
        Ok((chain, key, combined))
    }
}

/// A CA (ECDSA P-256) signing leaves.
pub struct BenchCa {
    issuer: Issuer<'static, KeyPair>,
    root_pem: String,
}

impl std::fmt::Debug for BenchCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchCa").finish_non_exhaustive()
    }
}

impl BenchCa {
    /// A new CA.
    pub fn new() -> anyhow::Result<BenchCa> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "EdgeCert benchmark CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = params.self_signed(&key)?;
        Ok(BenchCa {
            root_pem: root.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A leaf for `names` with a key of `kind`.
    pub fn leaf(&self, names: &[String], kind: KeyKind) -> anyhow::Result<Leaf> {
        let key = match kind {
            KeyKind::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
            KeyKind::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?,
        };
        let mut params = CertificateParams::new(names.to_vec())?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        let leaf = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            chain_pem: format!("{}{}", leaf.pem(), self.root_pem),
            key_pem: key.serialize_pem(),
        })
    }
}
