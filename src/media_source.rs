//! [`FileSession`] as a symphonia `MediaSource` (features `symphonia` for symphonia-core
//! 0.6 and `symphonia-05` for 0.5, the one rodio 0.23 decodes with).
//!
//! `is_seekable()` is true only when Range requests work and the length is known:
//! symphonia 0.5's OGG demuxer panics on a seekable source without a length, and rodio
//! panics building an M4A decoder in that state. `byte_len()` is the known length.

use crate::FileSession;

/// Feature `symphonia`: a [`FileSession`] goes straight into symphonia 0.6's
/// `MediaSourceStream`. Seekable only when Range requests work and the length is known.
///
/// ```no_run
/// use symphonia::core::io::{MediaSource, MediaSourceStream};
/// use kithara_file::{FileSource, FileSourceOptions};
///
/// let session = FileSource::open("http://127.0.0.1:8000/a.flac".parse()?, FileSourceOptions::new())?;
/// println!("seekable: {}, length: {:?}", session.is_seekable(), MediaSource::byte_len(&session));
/// let stream = MediaSourceStream::new(Box::new(session), Default::default());
/// # drop(stream);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "symphonia")]
impl symphonia_core::io::MediaSource for FileSession {
    fn is_seekable(&self) -> bool {
        FileSession::is_seekable(self)
    }

    fn byte_len(&self) -> Option<u64> {
        FileSession::byte_len(self)
    }
}

/// Feature `symphonia-05`: the same for symphonia 0.5, for code that decodes with it
/// directly (rodio 0.23 needs no feature: it takes any `Read + Seek`).
///
/// ```no_run
/// # // symphonia 0.5 is not a dev-dependency: this only shows the bound it satisfies.
/// use kithara_file::{FileSession, FileSource, FileSourceOptions};
///
/// fn wants_a_05_source(_: Box<dyn symphonia_core_05::io::MediaSource>) {}
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let session = FileSource::open("http://127.0.0.1:8000/a.ogg".parse()?, FileSourceOptions::new())?;
/// wants_a_05_source(Box::new(session));
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "symphonia-05")]
impl symphonia_core_05::io::MediaSource for FileSession {
    fn is_seekable(&self) -> bool {
        FileSession::is_seekable(self)
    }

    fn byte_len(&self) -> Option<u64> {
        FileSession::byte_len(self)
    }
}
