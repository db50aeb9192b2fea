//! ACME profiles chosen by an account, a domain or a certificate (the most specific wins, see
//! [`Certificate::profile_for`](crate::model::Certificate::profile_for)): a name is accepted
//! only when the CA's directory advertises it (`meta.profiles`), so a typo is a 400 naming the
//! valid ones when it is set, not a failed order weeks later at renewal.

use crate::error::{Error, Result};
use crate::usecases::Services;

/// How a client changes a profile setting: keep it (`None`), clear it (`Some(None)`, JSON
/// `null`: inherit from the domain or account again) or set it.
pub type ProfileChange = Option<Option<String>>;

/// The profile name checked against what the CA advertises: [`Error::UnknownProfile`] with
/// the offered names when it is not one of them, [`Error::IssuanceUnavailable`] when this
/// process cannot ask the CA, and the CA's error when the directory cannot be read.
pub async fn check_profile(services: &Services, requested: &str) -> Result<String> {
    let requested = requested.trim();
    let offered = match &services.issuance {
        Some(issuance) => issuance.profiles().await?,
        None => None,
    }
    .ok_or(Error::IssuanceUnavailable)?;
    if offered.contains_key(requested) {
        Ok(requested.to_owned())
    } else {
        Err(Error::UnknownProfile {
            profile: requested.to_owned(),
            offered: offered.into_keys().collect(),
        })
    }
}

/// [`check_profile`] of a change's new value, when it sets one.
pub async fn check_change(services: &Services, change: ProfileChange) -> Result<ProfileChange> {
    match change {
        Some(Some(profile)) => Ok(Some(Some(check_profile(services, &profile).await?))),
        other => Ok(other),
    }
}
