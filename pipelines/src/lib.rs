//! Shared pieces of the `triton-video` runner and the demo clip generator.

pub mod encoder;
pub mod scene;
