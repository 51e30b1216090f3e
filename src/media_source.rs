//! [`FileSession`] as a symphonia `MediaSource` (features `symphonia` for symphonia-core
//! 0.6 and `symphonia-05` for 0.5, the one rodio 0.23 decodes with).
//!
//! `is_seekable()` is true only when Range requests work and the length is known:
//! symphonia 0.5's OGG demuxer panics on a seekable source without a length, and rodio
//! panics building an M4A decoder in that state. `byte_len()` is the known length.

use crate::FileSession;

#[cfg(feature = "symphonia")]
impl symphonia_core::io::MediaSource for FileSession {
    fn is_seekable(&self) -> bool {
        FileSession::is_seekable(self)
    }

    fn byte_len(&self) -> Option<u64> {
        FileSession::byte_len(self)
    }
}

#[cfg(feature = "symphonia-05")]
impl symphonia_core_05::io::MediaSource for FileSession {
    fn is_seekable(&self) -> bool {
        FileSession::is_seekable(self)
    }

    fn byte_len(&self) -> Option<u64> {
        FileSession::byte_len(self)
    }
}
