//! EdgeCert's benchmarks: the edge terminator, on-demand issuance, Lambda init and renewal,
//! measured side by side with peers (nginx, haproxy, Caddy from Debian) on loopback.
//!
//! Each scenario is one binary under `src/bin/` (`bench-handshakes`, `bench-proxy`, ...);
//! `integration/scripts/bench.sh` builds them in release and runs them all (`--quick` only
//! checks that each scenario runs). Every binary prints one Markdown section: a table with our
//! figure, each peer's and the ratio, the date, the machine and the command that reproduces it;
//! `BENCHMARKS.md` collects them. Nothing here is a pass/fail test.
//!
//! Shared parts:
//! - [`process`]: servers started pinned to [`process::SERVER_CORE`] (the load generator stays
//!   on [`process::LOAD_CORE`]), their CPU time and RSS from `/proc`.
//! - [`pki`]: throwaway certificates (ECDSA P-256, RSA-2048) as PEM.
//! - [`seed`]: a SQLite store and vault filled with whitelisted, active domains and their
//!   issued certificates, as the API and issuer would leave them.
//! - [`edge`]: the terminator under test, `bench-edge`, as its own process over such a store.
//! - [`peers`]: nginx and haproxy configured like the terminator.
//! - [`tls_load`]: the TLS load generator (full handshakes, no resumption).
//! - [`report`]: command-line options and the Markdown output.

pub mod edge;
pub mod http_load;
pub mod machine;
pub mod peers;
pub mod pki;
pub mod process;
pub mod report;
pub mod seed;
pub mod tls_load;
