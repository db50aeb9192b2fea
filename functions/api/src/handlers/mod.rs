//! One module per endpoint. Each exposes `handle(&ApiState, Request) -> Response`, and answers
//! expected failures as error responses, never as invocation errors. The dashboard's module
//! serves every dashboard route and needs no state (`handle(&Request)`).

pub mod accounts_create;
pub mod accounts_list;
pub mod accounts_update;
pub mod certificates_create;
pub mod certificates_delete;
pub mod certificates_download;
pub mod certificates_get;
pub mod certificates_list;
pub mod certificates_logs;
pub mod certificates_renew;
pub mod certificates_update;
pub mod dashboard;
pub mod domains_create;
pub mod domains_delete;
pub mod domains_dns;
pub mod domains_get;
pub mod domains_list;
pub mod domains_nudge;
pub mod domains_ssl;
pub mod domains_update;
pub mod domains_verify;
pub mod limits_get;
pub mod zones_create;
pub mod zones_delete;
pub mod zones_list;
pub mod zones_verification;
