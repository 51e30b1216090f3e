//! The bytes of a session as a [`Stream`]: the same cursor and driver as
//! `Read`, polled without ever blocking.
//!
//! [`Stream`]: https://docs.rs/futures-core/0.3/futures_core/stream/trait.Stream.html

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{Inner, Source};
use crate::FileError;

/// The bytes of a [`FileSession`](crate::FileSession) as a [`Stream`], from
/// the session's position on. It shares the session's cursor: each item advances it.
///
/// Items are `Ok(bytes)` until the end of the file, then the stream ends (`None`). A
/// failure is one `Err` item, then the end. After [`stop`](crate::FileSession::stop) the
/// stream yields exactly one `Err(FileError::Stopped)` and then ends, so a consumer can
/// tell a stopped download from a finished one. If the driver thread ends for any other
/// reason, a pending poll is woken with an error.
///
/// It needs no particular async runtime: the driver thread wakes the task when bytes
/// arrive, and `poll_next` never blocks (not even behind a blocking `read` of another
/// thread). A session wakes one task: poll one stream of a session at a time (several
/// streams polled by different tasks would share the cursor anyway).
///
/// It also implements [`FusedStream`]. [`Bytes`](crate::Bytes) items are the driver's
/// chunks, handed out without copying.
///
/// ```no_run
/// use futures::StreamExt;
/// use kithara_file::{FileError, FileSource, FileSourceOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let session = FileSource::open("http://127.0.0.1:8000/a.bin".parse()?, FileSourceOptions::new())?;
/// let mut stream = session.stream();
/// let bytes = futures::executor::block_on(async {
///     let mut bytes = 0;
///     while let Some(chunk) = stream.next().await {
///         bytes += chunk?.len();
///     }
///     Ok::<_, FileError>(bytes)
/// })?;
/// assert_eq!(Some(bytes as u64), session.byte_len());
/// # Ok(())
/// # }
/// ```
///
/// [`Stream`]: https://docs.rs/futures-core/0.3/futures_core/stream/trait.Stream.html
/// [`FusedStream`]: https://docs.rs/futures-core/0.3/futures_core/stream/trait.FusedStream.html
pub struct FileStream {
    inner: Arc<Inner>,
    finished: bool,
}

impl FileStream {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        FileStream {
            inner,
            finished: false,
        }
    }

    fn next_item(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, FileError>>> {
        let state = &self.inner.state;
        if state.stop.is_stopped() {
            return Poll::Ready(Some(Err(FileError::Stopped)));
        }
        match &self.inner.source {
            Source::Cached(cached) => {
                let rest = cached.take_rest(&state.status);
                Poll::Ready((!rest.is_empty()).then_some(Ok(rest)))
            }
            Source::Remote(remote) => match remote.poll_next(state, cx.waker()) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(item) => Poll::Ready(item.transpose()),
            },
        }
    }
}

impl futures_core::Stream for FileStream {
    type Item = Result<Bytes, FileError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let item = self.next_item(cx);
        if matches!(item, Poll::Ready(None | Some(Err(_)))) {
            self.finished = true;
        }
        item
    }
}

impl futures_core::FusedStream for FileStream {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

impl fmt::Debug for FileStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStream")
            .field("url", &self.inner.url)
            .field("finished", &self.finished)
            .finish()
    }
}
