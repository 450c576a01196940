//! The Nexmark benchmark's event generator.

pub mod source;
