//! Real counterparts for tokenvault's tests.
//!
//! [`reference_server`] holds small, self-contained HTTP servers that speak the three vendor refresh
//! dialects of the seed documents (`000` entity token, `001` success envelope, `002` versioned
//! bearer) exactly as written, with rotation, revocation, reuse detection and switchable faults.
//! Rust tests start one in-process with [`ReferenceServer::start`]; tests in other languages run the
//! `reference-server` binary, which prints `LISTENING <port>` and offers the same switches over
//! HTTP under `/test/…`.
//!
//! This crate deliberately does not depend on `tokenvault`: it is the other side of the wire.

pub mod oidc_provider;
pub mod reference_server;

pub use reference_server::{Dialect, Fault, IssuedTokens, ReferenceServer, ServerConfig, Stats, UnknownDialect};
