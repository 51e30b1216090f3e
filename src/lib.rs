//! kithara-file (skeleton)
mod error;
pub use error::FileError;
