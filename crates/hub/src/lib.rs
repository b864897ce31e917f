//! The herald hub: topics, a durable log, lossless resume and fan-out over Server-Sent Events.
//! (Work in progress: see issue 4.)

pub mod log;
