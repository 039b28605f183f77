//! triton-proxy library.
