//! The proxy's decisions that need no network and no runtime, in a crate of their own so that
//! their tests (and each mutant of the mutation run) build without the proxy's server:
//! - [`auth`]: which credentials are let in, and to which models;
//! - [`control`]: what a packet asks Triton for (model, inputs and the payload bytes each reads,
//!   outputs, timeout), every problem naming the field;
//! - [`rope`]: payload bytes kept as the HTTP/2 frames they arrived in, and protobuf fields read
//!   and written across them.
//!
//! `triton-proxy` re-exports the three modules under the same names.

pub mod auth;
pub mod control;
pub mod rope;
