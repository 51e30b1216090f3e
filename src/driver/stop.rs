//! The one way a session stops: a channel that never carries a message is closed.
//!
//! Every thread that can block on the session's behalf (the driver between requests, while
//! the channel is full, during a backoff; a reader waiting for bytes) selects on the
//! signal's receiver, so closing it wakes them all at once. A request in flight is
//! interrupted separately, by [`Cancel`](super::Cancel).

use std::sync::Mutex;

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};

use crate::lock;

/// Held by the session; [`stop`](StopSignal::stop) closes it for good.
pub(crate) struct StopSignal {
    sender: Mutex<Option<Sender<()>>>,
    watch: StopWatch,
}

/// A receiving end of the stop signal.
#[derive(Clone)]
pub(crate) struct StopWatch(Receiver<()>);

impl StopSignal {
    pub(crate) fn new() -> Self {
        let (sender, receiver) = bounded(0);
        StopSignal {
            sender: Mutex::new(Some(sender)),
            watch: StopWatch(receiver),
        }
    }

    /// Closes the signal; later calls do nothing.
    pub(crate) fn stop(&self) {
        lock(&self.sender).take();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.watch.is_stopped()
    }

    /// A receiving end to hand to another thread.
    pub(crate) fn watch(&self) -> StopWatch {
        self.watch.clone()
    }

    pub(crate) fn as_watch(&self) -> &StopWatch {
        &self.watch
    }
}

impl StopWatch {
    pub(crate) fn is_stopped(&self) -> bool {
        matches!(self.0.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// For `select!`: becomes ready (with an error) once stopped.
    pub(crate) fn receiver(&self) -> &Receiver<()> {
        &self.0
    }
}
