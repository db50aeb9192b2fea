//! EdgeCert's edge terminator: the part customers' browsers touch.
//!
//! - TLS on rustls (aws-lc-rs), certificates chosen synchronously by server name from memory.
//!   Memory holds the recently used names only, within a budget: a name not held is loaded
//!   from the store and the vault on its first handshake, so start time and memory do not grow
//!   with the number of domains. The store's change feeds keep what is held current (deletions
//!   and re-claims at once); the last good certificate stays served when a read fails.
//! - Whitelisted names with no certificate yet get one issued on demand (one flight per name
//!   here, the issuer's lease across processes) while the handshake waits a bounded time;
//!   anything else is refused fast, with no store write and no ACME call.
//! - Port 80: ACME HTTP-01 answers from the store; everything else redirects to HTTPS.
//! - A reverse proxy on hyper (HTTP/1.1 and h2 to clients, streaming, WebSocket upgrades) to
//!   each domain's origin, with the origin address policy applied to the address actually
//!   connected to.
//! - `/healthz` and Prometheus `/metrics` on an admin port; graceful shutdown.
//!
//! The library is the terminator; `src/bin/edgecert-terminator.rs` only wires it to the AWS
//! adapters. Embed it with [`Terminator::start`] (the local runner does, on SQLite).

mod admin;
mod cache;
mod config;
mod error;
mod http01;
mod io;
mod limits;
mod metrics;
mod on_demand;
mod origin;
mod proxy;
mod refresh;
mod request_head;
mod server;
mod shared;
mod tls;

pub use config::{DeploymentConfig, TerminatorConfig, vars};
pub use error::{Result, TerminatorError};
pub use io::IdleTimeout;
/// The allocator of every process that runs the edge: declare it with
/// `#[global_allocator] static ALLOCATOR: EdgeAllocator = EdgeAllocator;`.
///
/// Why not the system's: the cache's memory budget bounds what the edge holds, but glibc's
/// malloc keeps what a busy edge frees. Loading names on their handshakes at thousands a
/// second, a terminator whose live heap was 238 MiB (heaptrack) had an RSS of 766 MiB under
/// glibc, 688 MiB with one arena, and 262 MiB under mimalloc (BENCHMARKS.md, scenario 3). musl's
/// malloc, which the container's static binary would otherwise get, is slow under many threads.
pub use mimalloc::MiMalloc as EdgeAllocator;
pub use origin::roots_from_pem;
pub use server::{Listeners, Terminator};
