//! Cancelling the request in flight from another thread.
//!
//! A driver blocked in a body read cannot see commands. The session can still end that
//! read: the driver registers the agent of every request it sends, and `Agent::shutdown`
//! from another thread makes the blocked read fail at once. A cancelled agent refuses new
//! requests, so the driver builds a fresh one afterwards.

use std::sync::Mutex;
use std::time::Duration;

use ureq::Agent;

use super::handoff::Front;
use crate::lock;

/// How long the driver may stay silent on an older fetch, while not held back by a full
/// channel, before a reader that wants a newer fetch cancels the request in its way.
/// Without this a seek away from a stalled body waits out the read timeout (31 s measured).
pub(crate) const STALL_CHECK: Duration = Duration::from_millis(100);

/// The request in flight, as registered by the driver.
#[derive(Default)]
pub(crate) struct Cancel(Mutex<InFlight>);

#[derive(Default)]
struct InFlight {
    epoch: u64,
    agent: Option<Agent>,
    /// Requests for fetches older than this are cancelled, even ones not yet sent.
    cancel_below: u64,
}

impl Cancel {
    /// Registers `agent` as serving fetch `epoch`; `false` if that fetch is already
    /// cancelled (then the request is not sent).
    pub(crate) fn begin(&self, epoch: u64, agent: &Agent) -> bool {
        let mut in_flight = lock(&self.0);
        if epoch < in_flight.cancel_below {
            return false;
        }
        in_flight.epoch = epoch;
        in_flight.agent = Some(agent.clone());
        true
    }

    /// Ends the registration. Returns whether the request was cancelled meanwhile (its
    /// errors are then no failures, and its agent is shut down).
    pub(crate) fn end(&self) -> bool {
        lock(&self.0).agent.take().is_none()
    }

    /// Cancels the request in flight if it serves a fetch older than `epoch`.
    pub(crate) fn cancel_below(&self, epoch: u64) {
        let agent = {
            let mut in_flight = lock(&self.0);
            in_flight.cancel_below = in_flight.cancel_below.max(epoch);
            if in_flight.epoch < epoch {
                in_flight.agent.take()
            } else {
                None
            }
        };
        if let Some(agent) = agent {
            agent.shutdown();
        }
    }

    /// Cancels whatever is in flight and everything after it (the session stops).
    pub(crate) fn cancel_all(&self) {
        self.cancel_below(u64::MAX);
    }

    /// A reader wants fetch `epoch`: if the driver is still on an older one and has been
    /// silent for [`STALL_CHECK`] without being held back (by a full channel, or waiting
    /// for the reader to make room in the look-ahead), it is stuck in a stalled body;
    /// cancel that request so the new fetch starts now. A held-back driver sees the
    /// command at once, and its agent keeps its idle connections.
    pub(crate) fn nudge(&self, epoch: u64, front: Front, channel_full: bool) {
        let silent = front.moved_at.elapsed() >= STALL_CHECK;
        if front.epoch < epoch && silent && !channel_full && !front.paced {
            self.cancel_below(epoch);
        }
    }
}
