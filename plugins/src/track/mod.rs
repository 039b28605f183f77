//! Multi-object tracking, without GStreamer: ByteTrack over the detections of each frame
//! ([`bytetrack`]), its constant-velocity Kalman filter ([`kalman`]) and the optimal assignment
//! with a cost limit ([`assign`]). The `dettrack` element (issue 27) is built on this.

pub mod assign;
pub mod bytetrack;
pub mod kalman;

pub use bytetrack::{Detection, Frame, Params, State, TrackView, Tracker, iou};

#[cfg(test)]
mod tests;
