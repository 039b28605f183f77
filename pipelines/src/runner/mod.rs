//! The pieces of the `triton-video` binary: settings ([`args`]), the server check before the
//! run ([`preflight`]), the pipeline it builds ([`launch`]) and what it prints ([`report`]);
//! with `--cameras`, many cameras at once ([`cameras`] file, [`fleet`] of pipelines, Prometheus
//! [`metrics`], the HTTP [`api`] and its [`events`]); [`signals`] for graceful stops and reloads.

pub mod api;
pub mod args;
pub mod cameras;
pub mod events;
pub mod fleet;
pub mod keep;
pub mod launch;
pub mod metrics;
pub mod preflight;
pub mod report;
pub mod signals;
pub mod stages;
