//! A string that must never reach a log line: private keys, API keys, ACME credentials.

use std::fmt;

/// Secret text. `Debug` and `Display` print a placeholder; read it with [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps secret text.
    pub fn new(text: impl Into<String>) -> Self {
        SecretString(text.into())
    }

    /// The secret itself; the name makes every read visible in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = SecretString::new("-----BEGIN PRIVATE KEY-----abc");
        assert!(!format!("{secret:?}").contains("PRIVATE"));
        assert_eq!(secret.expose(), "-----BEGIN PRIVATE KEY-----abc");
    }
}
