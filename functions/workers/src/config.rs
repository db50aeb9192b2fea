//! The workers' own settings, read once at start from the environment. Everything else (table,
//! secrets, edge, DNS, ACME CA) is the deployment configuration every EdgeCert process shares
//! ([`edgecert_deployment::DeploymentConfig`]). Every variable here also appears in
//! template.yaml and in the local runner's defaults, and nowhere else.

use edgecert_core::usecases::key_storage::KeySweepSettings;
use edgecert_core::usecases::renewals::RenewalSettings;
use edgecert_deployment::{ConfigError, Variables};

/// Names of the environment variables.
pub mod vars {
    /// Certificates a worker issues or renews at once (default 8).
    pub const ISSUE_CONCURRENCY: &str = "EDGECERT_ISSUE_CONCURRENCY";
    /// Certificates whose keys one renewer run moves to the current key storage (a mode
    /// change, a rotated data key); default 2000, 0 stops the sweep.
    pub const KEY_SWEEP_PER_RUN: &str = "EDGECERT_KEY_SWEEP_PER_RUN";
}

/// How the workers pace themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Certificates worked on at once.
    pub concurrency: usize,
    /// Certificates whose keys one renewer run moves to the current key storage.
    pub key_sweep_per_run: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 8,
            key_sweep_per_run: KeySweepSettings::DEFAULT_PER_RUN,
        }
    }
}

impl WorkerConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<WorkerConfig, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map); unset ones keep their default.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkerConfig, ConfigError> {
        let variables = Variables::new(&lookup);
        let number = |name, minimum| variables.whole_number(name, minimum);
        let defaults = WorkerConfig::default();
        let too_large = |variable| ConfigError::new(variable, "is too large");
        Ok(WorkerConfig {
            concurrency: match number(vars::ISSUE_CONCURRENCY, 1)? {
                Some(workers) => usize::try_from(workers)
                    .map_err(|_| too_large(vars::ISSUE_CONCURRENCY))?
                    .min(256),
                None => defaults.concurrency,
            },
            key_sweep_per_run: number(vars::KEY_SWEEP_PER_RUN, 0)?
                .unwrap_or(defaults.key_sweep_per_run),
        })
    }

    /// The key storage sweep's settings: this many moves per run, at the workers'
    /// concurrency.
    pub fn key_sweep_settings(&self) -> KeySweepSettings {
        KeySweepSettings {
            per_run: self.key_sweep_per_run,
            concurrency: self.concurrency,
            ..KeySweepSettings::default()
        }
    }

    /// The renewer's settings.
    pub fn renewal_settings(&self) -> RenewalSettings {
        RenewalSettings {
            concurrency: self.concurrency,
            ..RenewalSettings::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        WorkerConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_eight_at_once() {
        let config = config(&[]).unwrap();
        assert_eq!(config, WorkerConfig::default());
        assert_eq!(config.renewal_settings().concurrency, 8);
    }

    #[test]
    fn values_are_read_and_errors_name_the_variable() {
        let config = config(&[
            (vars::ISSUE_CONCURRENCY, "4"),
            (vars::KEY_SWEEP_PER_RUN, "0"),
        ])
        .unwrap();
        assert_eq!(config.key_sweep_settings().per_run, 0);
        assert_eq!(config.concurrency, 4);
        let error = self::config(&[(vars::ISSUE_CONCURRENCY, "0")]).unwrap_err();
        assert_eq!(error.variable, vars::ISSUE_CONCURRENCY);
        let error = self::config(&[(vars::KEY_SWEEP_PER_RUN, "many")]).unwrap_err();
        assert_eq!(error.variable, vars::KEY_SWEEP_PER_RUN);
        assert!(error.to_string().contains("many"));
    }
}
