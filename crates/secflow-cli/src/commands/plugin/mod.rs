//! `secflow plugin ...`: one file per verb.

pub mod build;
pub mod check;
pub mod disable;
pub mod enable;
pub mod info;
pub mod install;
pub mod list;
pub mod new;
pub mod pack;
pub mod permissions;
pub mod release;
pub mod sync;
pub mod uninstall;
pub mod versions;
