//! Lines from a TCP socket (for demos; not replayable).

pub mod source;
