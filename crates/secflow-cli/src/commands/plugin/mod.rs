//! `secflow plugin ...` commands.

pub mod build;
pub mod new;
