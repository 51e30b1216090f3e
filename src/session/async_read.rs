//! A session's bytes as an async reader: [`AsyncFileReader`] implements `AsyncRead +
//! AsyncSeek` of `futures-io` and of `tokio` (each behind its cargo feature) over the same
//! cursor as the sync `Read`, polled without ever blocking.
//!
//! A poll copies from the chunk at the cursor straight into the caller's buffer and
//! consumes only what it copied: the rest of the chunk stays in the cursor for the next
//! poll (or for a sync read through another handle), so positions stay exact. When no
//! byte is there, the poll registers the task with the driver, which wakes it when bytes
//! arrive, the download fails, or the session stops.

use std::fmt;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{FileSession, Source};
use crate::FileError;

/// An async reader over a [`FileSession`]: `futures_io::AsyncRead + AsyncSeek` with the
/// `futures-io` feature, `tokio::io::AsyncRead + AsyncSeek` with the `tokio` feature
/// (one type, both sets with both features). Made by [`FileSession::async_reader`].
///
/// It is an owned handle on the session (`Send + Sync + Unpin + 'static`, so it can move
/// into a spawned task), sharing its cursor: the same bytes at the same positions as the
/// sync [`Read`](std::io::Read), and reads or seeks through any handle move the one
/// position. It keeps the session alive like a clone of it does.
///
/// # Contract
///
/// - A read returns the bytes at the position, `0` only at the end of the file, and an
///   error (wrapping a [`FileError`], as the sync `read`) for a failure. After
///   [`stop`](FileSession::stop) a read, pending or new, returns an error wrapping
///   [`FileError::Stopped`].
/// - `Poll::Pending` is returned only with the task registered: the driver thread wakes it.
///   No poll ever blocks the executor's thread, not even behind a blocking sync `read` of
///   another handle (the task is woken when that read ends). Bytes a session already holds
///   in its partial cache file are read back with a positional read of that file, as
///   [`FileStream`](crate::FileStream) does.
/// - A seek follows the contract of the sync [`Seek`](std::io::Seek) (see
///   [`FileSession`]): it completes at once, never waits on the network, and at most sends
///   the driver a request for the new position. With `tokio`, `start_seek` does the seek
///   and its error, if any, is returned right there; `poll_complete` then reports the new
///   position (the current position when no seek was started).
/// - There is no runtime inside the crate: it works under any executor.
/// - A session wakes one task: poll one async reader (or [`FileStream`](crate::FileStream))
///   of a session at a time.
///
/// # Examples
///
/// With `futures` (feature `futures-io`):
///
/// ```no_run
/// # #[cfg(feature = "futures-io")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::io::{AsyncReadExt, AsyncSeekExt};
/// use kithara_file::{FileSource, FileSourceOptions};
/// use std::io::SeekFrom;
///
/// let url = "http://127.0.0.1:8000/track.flac".parse()?;
/// let session = FileSource::open(url, FileSourceOptions::new())?;
/// let mut reader = session.async_reader();
/// futures::executor::block_on(async {
///     let mut head = [0u8; 4];
///     reader.read_exact(&mut head).await?;
///     reader.seek(SeekFrom::End(-128)).await?;
///     let mut tail = Vec::new();
///     reader.read_to_end(&mut tail).await?;
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "futures-io"))]
/// # fn main() {}
/// ```
///
/// With `tokio` (feature `tokio`), in a spawned task:
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use kithara_file::{FileSource, FileSourceOptions};
/// use tokio::io::{AsyncReadExt, AsyncSeekExt};
///
/// let url = "http://127.0.0.1:8000/track.flac".parse()?;
/// let session = FileSource::open(url, FileSourceOptions::new())?;
/// let mut reader = session.async_reader();
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// let tail = runtime.block_on(async move {
///     tokio::spawn(async move {
///         reader.seek(std::io::SeekFrom::Start(1000)).await?;
///         let mut rest = Vec::new();
///         reader.read_to_end(&mut rest).await.map(|_| rest)
///     })
///     .await
/// })??;
/// println!("{} bytes after byte 1000", tail.len());
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
pub struct AsyncFileReader {
    session: FileSession,
    /// Where `tokio`'s `start_seek` moved the cursor, for `poll_complete`.
    #[cfg(feature = "tokio")]
    seeked: Option<u64>,
}

impl FileSession {
    /// An async reader of this session (`AsyncRead + AsyncSeek` of `futures-io` and/or
    /// `tokio`, by feature), sharing this session's cursor: see [`AsyncFileReader`].
    ///
    /// ```no_run
    /// # #[cfg(feature = "futures-io")]
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures::io::AsyncReadExt;
    /// use kithara_file::{FileSource, FileSourceOptions};
    ///
    /// let url = "http://127.0.0.1:8000/track.mp3".parse()?;
    /// let session = FileSource::open(url, FileSourceOptions::new())?;
    /// let mut reader = session.async_reader();
    /// let mut head = [0u8; 10];
    /// futures::executor::block_on(reader.read_exact(&mut head))?;
    /// assert_eq!(session.position(), 10); // one cursor
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "futures-io"))]
    /// # fn main() {}
    /// ```
    #[must_use]
    pub fn async_reader(&self) -> AsyncFileReader {
        AsyncFileReader {
            session: self.clone(),
            #[cfg(feature = "tokio")]
            seeked: None,
        }
    }
}

impl AsyncFileReader {
    /// The session this reader reads, for its queries and [`stop`](FileSession::stop).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use kithara_file::{FileSource, FileSourceOptions};
    ///
    /// let url = "http://127.0.0.1:8000/track.mp3".parse()?;
    /// let reader = FileSource::open(url, FileSourceOptions::new())?.async_reader();
    /// println!("{:?}", reader.session().progress());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn session(&self) -> &FileSession {
        &self.session
    }

    /// One read: `copy` gets the bytes at the position, takes what fits (`room` at most)
    /// and says how many it took.
    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        room: usize,
        copy: impl FnOnce(&[u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        let inner = &self.session.inner;
        let state = &inner.state;
        if state.stop.is_stopped() {
            return Poll::Ready(Err(FileError::Stopped.into()));
        }
        if room == 0 {
            return Poll::Ready(Ok(0));
        }
        match &inner.source {
            Source::Cached(cached) => Poll::Ready(Ok(cached.read_with(&state.status, copy))),
            Source::Remote(remote) => remote
                .poll_read(state, cx.waker(), copy)
                .map_err(io::Error::from),
        }
    }
}

/// Copies what fits of `bytes` into `buf`; how many.
#[cfg(feature = "futures-io")]
fn copy_into(buf: &mut [u8], bytes: &[u8]) -> usize {
    let n = bytes.len().min(buf.len());
    buf[..n].copy_from_slice(&bytes[..n]);
    n
}

#[cfg(feature = "futures-io")]
impl futures_io::AsyncRead for AsyncFileReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let room = buf.len();
        self.poll_read_with(cx, room, |bytes| copy_into(buf, bytes))
    }
}

#[cfg(feature = "futures-io")]
impl futures_io::AsyncSeek for AsyncFileReader {
    /// Always ready: a seek never waits on the network.
    fn poll_seek(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        Poll::Ready(self.session.seek_impl(pos))
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncRead for AsyncFileReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        self.poll_read_with(cx, room, |bytes| {
            let n = bytes.len().min(buf.remaining());
            buf.put_slice(&bytes[..n]);
            n
        })
        .map_ok(|_| ())
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncSeek for AsyncFileReader {
    /// Seeks at once (a seek never waits on the network); its error comes back here.
    fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let to = self.session.seek_impl(position)?;
        self.seeked = Some(to);
        Ok(())
    }

    /// Always ready: the position `start_seek` moved to, or the current position.
    fn poll_complete(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let position = self
            .seeked
            .take()
            .unwrap_or_else(|| self.session.position());
        Poll::Ready(Ok(position))
    }
}

impl fmt::Debug for AsyncFileReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFileReader")
            .field("session", &self.session)
            .finish()
    }
}
