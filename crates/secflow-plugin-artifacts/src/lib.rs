//! Paths of the plugins in `plugins/`, compiled from source by this crate's build script.
//!
//! Host tests and benchmarks depend on this crate to get real components; adding a plugin
//! directory with a `plugin.toml` to `plugins/` makes it appear here as a constant.

/// A built plugin: its source directory (with `plugin.toml`) and its component file.
#[derive(Debug, Clone, Copy)]
pub struct Artifact {
    pub dir: &'static str,
    pub component: &'static str,
}

impl Artifact {
    /// The component bytes.
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(self.component).expect("built plugin component")
    }
}

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
