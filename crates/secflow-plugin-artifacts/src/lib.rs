//! The plugins in `plugins/`, compiled from source by this crate's build script.
//!
//! Host tests and benchmarks depend on this crate to get real components; adding a plugin
//! directory with a `plugin.toml` to `plugins/` makes it appear here as a constant. The
//! official plugins listed in `plugins/BUNDLED` are also embedded ([`BUNDLED`]) so that
//! `secflow scan` works on a fresh machine with nothing installed.

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

/// An official plugin embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    /// Directory name under `plugins/`.
    pub name: &'static str,
    /// Its `plugin.toml`.
    pub manifest: &'static str,
    /// The component bytes.
    pub component: &'static [u8],
    /// SHA-256 of `component`, computed when it was built: the loader checks the bytes
    /// against it, and reports name it, so a run can be traced to exact plugin builds.
    pub sha256: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
