//! Free loopback ports for the services we start.
//!
//! A port is found by binding `127.0.0.1:0` and releasing it, so another process could take it
//! before our service binds it; services report that as a startup failure with their log. Within
//! this process no port is handed out twice, so services started concurrently by parallel tests
//! never collide with each other.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context as _, bail};

/// Ports already handed out by [`free_port`] in this process.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// How many candidate ports to try before giving up.
const ATTEMPTS: usize = 64;

/// Returns a port that is currently free on 127.0.0.1 for both TCP and UDP (DNS servers listen
/// on both) and that this process has not handed out before.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..ATTEMPTS {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding a TCP socket on 127.0.0.1 to find a free port")?;
        let port = listener
            .local_addr()
            .context("reading the port of a bound TCP socket")?
            .port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        // A poisoned lock still holds a valid set: a panic cannot leave it half-updated.
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    bail!("found no free TCP+UDP port on 127.0.0.1 after {ATTEMPTS} attempts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
            UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        }
    }
}
