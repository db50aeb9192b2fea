//! Plans and what each allows. The defaults are the reference's (free 0, plus 5, pro 25,
//! elite 100 certificates; wildcard on elite; auto-renew on pro and elite; manual renewal and
//! API access from plus up). Operators may replace the catalog.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The name of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanName {
    /// No certificates.
    Free,
    /// Manual certificates.
    Plus,
    /// Auto-renewal.
    Pro,
    /// Wildcards.
    Elite,
}

impl PlanName {
    /// Every plan, cheapest first.
    pub const ALL: [PlanName; 4] = [
        PlanName::Free,
        PlanName::Plus,
        PlanName::Pro,
        PlanName::Elite,
    ];

    /// The name as used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanName::Free => "free",
            PlanName::Plus => "plus",
            PlanName::Pro => "pro",
            PlanName::Elite => "elite",
        }
    }
}

impl fmt::Display for PlanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PlanName {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        PlanName::ALL
            .into_iter()
            .find(|plan| plan.as_str() == text)
            .ok_or_else(|| Error::BadRequest {
                code: "invalid_plan",
                message: format!(
                    "plan must be one of free, plus, pro, elite (got '{}')",
                    text.chars().take(20).collect::<String>()
                ),
            })
    }
}

/// What a plan allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The plan's name.
    pub name: PlanName,
    /// Downloadable certificates the account may hold.
    pub max_certificates: u32,
    /// Whitelisted domains the account may hold.
    pub max_domains: u32,
    /// Wildcard certificates allowed.
    pub wildcard_enabled: bool,
    /// Automatic renewal of downloadable certificates allowed.
    pub auto_renew_enabled: bool,
    /// Manual renewal (and the certificates API) allowed.
    pub manual_renew_enabled: bool,
}

impl Plan {
    /// The reference's defaults; `max_domains` defaults to the certificate maximum.
    pub const fn default_for(name: PlanName) -> Plan {
        let (max_certificates, wildcard_enabled, auto_renew_enabled, manual_renew_enabled) =
            match name {
                PlanName::Free => (0, false, false, false),
                PlanName::Plus => (5, false, false, true),
                PlanName::Pro => (25, false, true, true),
                PlanName::Elite => (100, true, true, true),
            };
        Plan {
            name,
            max_certificates,
            max_domains: max_certificates,
            wildcard_enabled,
            auto_renew_enabled,
            manual_renew_enabled,
        }
    }

    /// Refuses certificate management on plans without it.
    pub fn check_certificates_allowed(&self) -> Result<(), Error> {
        if self.max_certificates == 0 || !self.manual_renew_enabled {
            return Err(Error::PlanForbids {
                code: "paid_plan_required",
                message: "Certificate management requires paid subscription",
            });
        }
        Ok(())
    }

    /// Refuses wildcards on plans without them.
    pub fn check_wildcard_allowed(&self) -> Result<(), Error> {
        if !self.wildcard_enabled {
            return Err(Error::PlanForbids {
                code: "wildcard_requires_elite",
                message: "Wildcard certificates require Elite plan",
            });
        }
        Ok(())
    }

    /// Refuses auto-renewal on plans without it.
    pub fn check_auto_renew_allowed(&self) -> Result<(), Error> {
        if !self.auto_renew_enabled {
            return Err(Error::PlanForbids {
                code: "auto_renew_requires_pro",
                message: "Auto-renewal requires Pro or Elite plan",
            });
        }
        Ok(())
    }

    /// Refuses manual renewal on plans without it.
    pub fn check_manual_renew_allowed(&self) -> Result<(), Error> {
        if !self.manual_renew_enabled {
            return Err(Error::PlanForbids {
                code: "paid_plan_required",
                message: "Certificate management requires paid subscription",
            });
        }
        Ok(())
    }
}

/// The plans in force: the defaults unless an operator configures others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCatalog {
    plans: [Plan; 4],
}

impl Default for PlanCatalog {
    fn default() -> Self {
        PlanCatalog {
            plans: PlanName::ALL.map(Plan::default_for),
        }
    }
}

impl PlanCatalog {
    /// A catalog with the given plans; a plan missing from `plans` keeps its default.
    pub fn with(plans: impl IntoIterator<Item = Plan>) -> Self {
        let mut catalog = PlanCatalog::default();
        for plan in plans {
            catalog.plans[plan.name as usize] = plan;
        }
        catalog
    }

    /// The plan with this name.
    pub fn get(&self, name: PlanName) -> &Plan {
        &self.plans[name as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_reference_table() {
        let catalog = PlanCatalog::default();
        let rows: Vec<_> = PlanName::ALL
            .iter()
            .map(|name| {
                let plan = catalog.get(*name);
                (
                    plan.max_certificates,
                    plan.wildcard_enabled,
                    plan.auto_renew_enabled,
                    plan.manual_renew_enabled,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (0, false, false, false),
                (5, false, false, true),
                (25, false, true, true),
                (100, true, true, true)
            ]
        );
        assert_eq!(catalog.get(PlanName::Pro).max_domains, 25);
    }

    #[test]
    fn plan_errors_carry_the_reference_sentences() {
        let catalog = PlanCatalog::default();
        let free = catalog
            .get(PlanName::Free)
            .check_certificates_allowed()
            .unwrap_err();
        assert_eq!(
            (free.status(), free.public_message().as_str()),
            (403, "Certificate management requires paid subscription")
        );
        let wildcard = catalog
            .get(PlanName::Pro)
            .check_wildcard_allowed()
            .unwrap_err();
        assert_eq!(
            (wildcard.status(), wildcard.public_message().as_str()),
            (403, "Wildcard certificates require Elite plan")
        );
        let auto = catalog
            .get(PlanName::Plus)
            .check_auto_renew_allowed()
            .unwrap_err();
        assert_eq!(
            (auto.status(), auto.public_message().as_str()),
            (403, "Auto-renewal requires Pro or Elite plan")
        );
        assert!(
            catalog
                .get(PlanName::Elite)
                .check_wildcard_allowed()
                .is_ok()
        );
        assert!(
            catalog
                .get(PlanName::Pro)
                .check_auto_renew_allowed()
                .is_ok()
        );
    }

    #[test]
    fn operators_can_override_one_plan() {
        let custom = Plan {
            max_domains: 500,
            ..Plan::default_for(PlanName::Plus)
        };
        let catalog = PlanCatalog::with([custom]);
        assert_eq!(catalog.get(PlanName::Plus).max_domains, 500);
        assert_eq!(catalog.get(PlanName::Pro).max_domains, 25);
        assert_eq!("elite".parse::<PlanName>().unwrap(), PlanName::Elite);
        assert_eq!(
            "gold".parse::<PlanName>().unwrap_err().code(),
            "invalid_plan"
        );
    }
}
