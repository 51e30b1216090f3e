//! The look-ahead in bytes: the driver never receives past the reader's position plus the
//! look-ahead, wherever the reader stops (the channel alone counts whole chunks, so a
//! reader that stopped inside one left the rest of it on top: 81,344 bytes ahead of a
//! 64 KiB look-ahead, measured).

use crossbeam_channel::select;

use super::run::{Driver, Interrupt};
use super::Fetch;

impl Driver {
    /// How many bytes the next socket read may take so that nothing past the reader plus
    /// the look-ahead arrives; waits (watching commands and the stop) while that is none.
    /// Bytes a fetch starts with ahead of the reader (the reader still plays the cached
    /// bytes before it) count from the fetch's start. `skip`: bytes the read discards.
    pub(crate) fn look_ahead_room(
        &mut self,
        fetch: Fetch,
        next: u64,
        skip: u64,
    ) -> Result<usize, Interrupt> {
        if self.prefetch.is_some() {
            return Ok(usize::MAX);
        }
        // Woken once a useful read fits: a fetch's first chunk (at most a quarter of the
        // look-ahead, and 256 KiB), not every few bytes the reader takes. Not the chunk
        // being filled: at 1 MiB the look-ahead would be held back by up to 1 MiB.
        let refill = self.pool.first_chunk() as u64;
        loop {
            let from = self.status.position().max(fetch.start);
            let limit = from.saturating_add(self.look_ahead);
            if limit > next {
                let room = (limit - next).saturating_add(skip);
                return Ok(usize::try_from(room).unwrap_or(usize::MAX));
            }
            let Some(demand) = self
                .status
                .demand(next.saturating_add(refill).saturating_sub(self.look_ahead))
            else {
                continue;
            };
            let demand = demand.clone();
            self.outlet.pace(true);
            let woken = select! {
                recv(self.commands) -> command => Err(Interrupt::from_command(command.ok())),
                recv(self.stop.receiver()) -> _ => Err(Interrupt::Exit),
                recv(demand) -> _ => Ok(()),
            };
            self.outlet.pace(false);
            woken?;
            super::let_reader_run();
        }
    }
}
