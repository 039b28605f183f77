//! `shared-memory=system`: tensors pass through POSIX shared-memory regions registered with a
//! Triton on the same host, instead of through the socket.
//!
//! * [`region`]: one region (create, map, unlink), named so that a leftover of a dead process is
//!   recognised and removed.
//! * [`pool`]: regions registered with Triton and leased per request; the request names the
//!   region instead of carrying bytes.

pub mod pool;
pub mod region;

pub use pool::{Lease, OutSpec, ShmPool};
