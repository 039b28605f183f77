//! The pieces of the `triton-video` binary: settings ([`args`]), the server check before the
//! run ([`preflight`]), the pipeline it builds ([`launch`]) and what it prints ([`report`]).

pub mod args;
pub mod launch;
pub mod preflight;
pub mod report;
