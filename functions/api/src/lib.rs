//! EdgeCert's HTTP API: one handler module per endpoint, the route table that maps method and
//! path to handler and Lambda function, the authorizer, and the one place errors become HTTP.
//!
//! Handlers are plain `async fn handle(&ApiState, Request) -> Response` over `lambda_http`
//! types. In AWS each runs in its own Lambda behind API Gateway (the one binary of
//! `functions/lambda`, told which route by `EDGECERT_FUNCTION`; see [`lambda`]); locally the
//! runner in `integration/` serves the same handlers on the same routes.

pub mod auth;
pub mod config;
pub mod gateway;
pub mod handlers;
pub mod lambda;
pub mod request;
pub mod response;
pub mod routes;
pub mod state;
pub mod views;

pub use routes::{Access, ROUTES, Route};
pub use state::ApiState;
