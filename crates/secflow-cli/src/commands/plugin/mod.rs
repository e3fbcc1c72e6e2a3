//! `secflow plugin ...` commands.

pub mod build;
pub mod new;
pub mod pack;
