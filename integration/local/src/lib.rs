//! EdgeCert as one local process: the API on the same routes as in AWS (through the same
//! authorizer and handlers), on the embedded SQLite store by default or on DynamoDB + Secrets
//! Manager when pointed at an endpoint, with Pebble and pebble-challtestsrv started for it.
//! The issuer, the renewer and the edge terminator run in the same process.

pub mod api_server;
pub mod stack;

pub use stack::{LocalOptions, LocalStack, StackInfo};
