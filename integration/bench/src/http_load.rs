//! The HTTP load generator for keep-alive proxy runs (HTTP/1.1 and h2 over TLS).
