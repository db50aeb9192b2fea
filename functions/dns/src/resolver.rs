//! The DNS resolver adapter on hickory.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use edgecert_core::ports::{CaaRecord, DnsResolver};
use edgecert_core::{Error, Result};
use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{ResolveError, TokioResolver};

/// Resolves names over DNS with no cache: ownership and pointing checks must see a record the
/// moment the customer creates it, and a nudge must not be answered from a stale cache.
pub struct HickoryResolver {
    resolver: TokioResolver,
}

impl HickoryResolver {
    /// Asks only `server` (plain UDP/TCP), e.g. challtestsrv's DNS port.
    pub fn with_name_server(server: SocketAddr) -> HickoryResolver {
        let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
        let config = ResolverConfig::from_parts(None, vec![], group);
        Self::build(config)
    }

    /// Asks the system's resolvers (`/etc/resolv.conf`).
    pub fn from_system_conf() -> Result<HickoryResolver> {
        let (config, _) = hickory_resolver::system_conf::read_system_conf().map_err(Error::dns)?;
        Ok(Self::build(config))
    }

    fn build(config: ResolverConfig) -> HickoryResolver {
        let mut options = ResolverOpts::default();
        options.cache_size = 0;
        options.timeout = Duration::from_secs(3);
        options.attempts = 2;
        options.use_hosts_file = ResolveHosts::Never;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(options)
                .build();
        HickoryResolver { resolver }
    }
}

/// No such name, or no record of that type: an empty answer, not a failure.
///
/// hickory reports SERVFAIL, REFUSED and similar answers as "no records found" too, with their
/// response code; those are failures to ask (a CAA lookup that fails must stop issuance, and
/// a pointing check must not report "no record" when the server is broken).
fn is_empty_answer(error: &ResolveError) -> bool {
    match error.proto().map(|proto| proto.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => {
            matches!(
                *response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            )
        }
        _ => false,
    }
}

#[async_trait]
impl DnsResolver for HickoryResolver {
    async fn txt(&self, name: &str) -> Result<Vec<String>> {
        match self.resolver.txt_lookup(name).await {
            Ok(lookup) => Ok(lookup
                .iter()
                .map(|txt| {
                    txt.txt_data()
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>()
                })
                .collect()),
            Err(error) if is_empty_answer(&error) => Ok(vec![]),
            Err(error) => Err(Error::dns(error)),
        }
    }

    async fn ip_addresses(&self, name: &str) -> Result<Vec<IpAddr>> {
        match self.resolver.lookup_ip(name).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(error) if is_empty_answer(&error) => Ok(vec![]),
            Err(error) => Err(Error::dns(error)),
        }
    }

    async fn cname(&self, name: &str) -> Result<Option<String>> {
        match self.resolver.lookup(name, RecordType::CNAME).await {
            Ok(lookup) => Ok(lookup.iter().find_map(|record| match record {
                RData::CNAME(target) => Some(target.0.to_utf8().trim_end_matches('.').to_owned()),
                _ => None,
            })),
            Err(error) if is_empty_answer(&error) => Ok(None),
            Err(error) => Err(Error::dns(error)),
        }
    }

    async fn caa(&self, name: &str) -> Result<Vec<CaaRecord>> {
        match self.resolver.lookup(name, RecordType::CAA).await {
            Ok(lookup) => Ok(lookup
                .iter()
                .filter_map(|record| match record {
                    RData::CAA(caa) => Some(CaaRecord {
                        flags: caa.flags(),
                        tag: caa.tag().as_str().to_ascii_lowercase(),
                        // The raw value keeps parameters (`; validationmethods=…`) and values
                        // hickory cannot parse, which the issuer must still see to refuse them.
                        value: String::from_utf8_lossy(caa.raw_value()).into_owned(),
                    }),
                    _ => None,
                })
                .collect()),
            Err(error) if is_empty_answer(&error) => Ok(vec![]),
            Err(error) => Err(Error::dns(error)),
        }
    }
}
