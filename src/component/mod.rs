//! Component metadata: the component file, and version/revision/repository lookup.
pub mod encrypt;
pub mod file;
pub mod metadata;

pub use file::{load, Component};
