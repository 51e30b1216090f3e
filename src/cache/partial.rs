//! The partial download of an asset: a sparse data file, its coverage, checkpoints, and
//! the commit that turns it into the body.

use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::lock;
use crate::platform::{self, sync_dir};
use crate::range_set::RangeSet;

use super::{
    decode_index, encode_index, encode_meta, invalid_input, open_rw, read_record, remove_if_exists,
    write_durable, CachedMeta, LeaseInner, BODY, FILE_DIR, INDEX, INDEX_TMP, META, META_TMP, PART,
    UNKNOWN_LEN,
};

/// A partial download shared by the downloader thread (writes) and reader threads (reads).
///
/// Reads and writes of the data file run concurrently; only `reset` and `commit` exclude
/// them. Coverage updates are O(1) for sequential appends and are kept in memory until
/// [`PartialFile::checkpoint`]. Dropping it keeps the partial data on disk for the next
/// run, as of the last checkpoint (call `checkpoint` before dropping to keep more).
pub(crate) struct PartialFile {
    lease: Arc<LeaseInner>,
    file_dir: PathBuf,
    /// The data file and whether it has become the body. Read-locked for I/O on the data,
    /// write-locked by `reset` and `commit`, which must not interleave with that I/O.
    gate: RwLock<Gate>,
    /// Serializes index writes (they share one temp name).
    persist: Mutex<()>,
    state: Mutex<Coverage>,
    /// Exclusive lock on `<id>/writer.lock`: the writer role.
    _writer: File,
    /// The data file again, for reads: they need no gate (a commit's fsyncs never hold a
    /// reader up, and the inode survives the rename); `Coverage::generation` tells a read
    /// that raced a `start_over`.
    reader: File,
}

pub(super) struct Gate {
    data: File,
    committed: bool,
}

pub(super) struct Coverage {
    meta: Option<CachedMeta>,
    ranges: RangeSet,
    /// Bumped when the coverage is forgotten (the data is about to be truncated).
    generation: u64,
}

impl Coverage {
    fn is_complete(&self) -> bool {
        match &self.meta {
            None => false,
            Some(meta) if meta.len == 0 => self.ranges.0.is_empty(),
            Some(meta) => matches!(self.ranges.0.as_slice(), [r] if *r == (0..meta.len)),
        }
    }
}

impl PartialFile {
    pub(super) fn open(lease: Arc<LeaseInner>, writer: File) -> io::Result<PartialFile> {
        let file_dir = lease.dir.join(FILE_DIR);
        fs::create_dir_all(&file_dir)?;
        // We hold the writer lock, so temp files present now belong to a killed writer.
        remove_if_exists(&file_dir.join(INDEX_TMP))?;
        remove_if_exists(&file_dir.join(META_TMP))?;
        let data = open_rw(&file_dir.join(PART))?;
        let data_len = data.metadata()?.len();
        let resumed = read_record(&file_dir.join(INDEX))
            .ok()
            .flatten()
            .and_then(|bytes| decode_index(&bytes))
            .filter(|(meta, ranges)| {
                let furthest = ranges.0.last().map_or(0, |r| r.end);
                meta.len != UNKNOWN_LEN && furthest <= meta.len && furthest <= data_len
            });
        let (meta, ranges) = match resumed {
            Some((meta, ranges)) => (Some(meta), ranges),
            None => {
                // Never mapped, so truncating the part file in place is safe.
                data.set_len(0)?;
                remove_if_exists(&file_dir.join(INDEX))?;
                (None, RangeSet::default())
            }
        };
        let reader = data.try_clone()?;
        Ok(PartialFile {
            lease,
            file_dir,
            reader,
            gate: RwLock::new(Gate {
                data,
                committed: false,
            }),
            persist: Mutex::new(()),
            state: Mutex::new(Coverage {
                meta,
                ranges,
                generation: 0,
            }),
            _writer: writer,
        })
    }

    /// The validators the partial data belongs to: from the previous run's index, or as
    /// set by [`PartialFile::reset`]. `None` for fresh partial data.
    pub(crate) fn meta(&self) -> Option<CachedMeta> {
        lock(&self.state).meta.clone()
    }

    /// Covered ranges: sorted, merged (no two touch) and non-empty.
    pub(crate) fn covered(&self) -> Vec<Range<u64>> {
        lock(&self.state).ranges.0.clone()
    }

    /// If `pos` lies inside a covered range, that range's end.
    pub(crate) fn covered_end(&self, pos: u64) -> Option<u64> {
        lock(&self.state).ranges.covered_end(pos)
    }

    /// The start of the first covered range that starts strictly after `pos`.
    pub(crate) fn next_covered_start(&self, pos: u64) -> Option<u64> {
        lock(&self.state).ranges.next_start_after(pos)
    }

    /// Forgets all coverage, truncates the data, records `meta`, and persists the empty
    /// index durably before the truncation (so a crash never pairs old bytes with new
    /// meta). A no-op returning `Ok` after commit.
    ///
    /// # Errors
    ///
    /// I/O errors writing the index or truncating the data; coverage is then empty in
    /// memory and on disk at least as far as anything is persisted.
    pub(crate) fn reset(&self, meta: CachedMeta) -> io::Result<()> {
        self.start_over(Some(meta))
    }

    /// Forgets the partial data of an older version: no coverage, no meta, in memory
    /// and on disk. Nothing can be committed until [`PartialFile::reset`] records a version.
    pub(crate) fn discard(&self) -> io::Result<()> {
        self.start_over(None)
    }

    /// Drops all coverage, then records `meta` (or none) durably and empties the data.
    fn start_over(&self, meta: Option<CachedMeta>) -> io::Result<()> {
        let gate = write(&self.gate);
        if gate.committed {
            return Ok(());
        }
        // Memory first: whatever fails below, no old coverage is claimed any more.
        {
            let mut state = lock(&self.state);
            state.meta = None;
            state.ranges = RangeSet::default();
            state.generation += 1;
        }
        let _persist = lock(&self.persist);
        self.write_index(meta.as_ref(), &[])?;
        sync_dir(&self.file_dir)?;
        lock(&self.state).meta = meta;
        gate.data.set_len(0)
    }

    /// Writes `data` at `offset` and marks it covered in memory (persisted by the next
    /// [`PartialFile::checkpoint`]). No fsync. A no-op returning `Ok` after commit.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the write would reach past a known `meta.len` (or overflow);
    /// I/O errors of the write (then nothing new is marked covered).
    pub(crate) fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = u64::try_from(data.len())
            .ok()
            .and_then(|len| offset.checked_add(len))
            .ok_or_else(|| invalid_input("write past the end of the address space"))?;
        let gate = read(&self.gate);
        if gate.committed {
            return Ok(());
        }
        // Meta only changes under the write gate, so this check holds for the write below.
        if let Some(meta) = &lock(&self.state).meta {
            if end > meta.len {
                return Err(invalid_input("write past the recorded length"));
            }
        }
        platform::write_all_at(&gate.data, data, offset)?;
        lock(&self.state).ranges.insert(offset..end);
        Ok(())
    }

    /// Copies covered bytes at `offset` into `buf`: `min(buf.len(), covered_end - offset)`
    /// bytes, or 0 if `offset` is not covered. Keeps working after commit.
    ///
    /// # Errors
    ///
    /// I/O errors reading the data file.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let (end, generation) = {
            let state = lock(&self.state);
            match state.ranges.covered_end(offset) {
                Some(end) => (end, state.generation),
                None => return Ok(0),
            }
        };
        let n = usize::try_from(end - offset).map_or(buf.len(), |n| n.min(buf.len()));
        let read = platform::read_exact_at(&self.reader, &mut buf[..n], offset);
        // Bytes read while the coverage was forgotten may be of another version.
        if lock(&self.state).generation != generation {
            return Ok(0);
        }
        read.map_err(|e| match e.kind() {
            // Never let a missing byte look like the end of the file to a decoder.
            io::ErrorKind::UnexpectedEof => {
                io::Error::other("cache data file is shorter than its coverage")
            }
            _ => e,
        })?;
        Ok(n)
    }

    /// Persists the coverage: syncs the data first, then writes the index to a temp name,
    /// fsyncs it and renames it over the index. A crash can lose coverage recorded since,
    /// but the index never claims bytes that are not on disk. A no-op after commit.
    ///
    /// # Errors
    ///
    /// I/O errors syncing the data or writing the index (the previous index stays).
    pub(crate) fn checkpoint(&self) -> io::Result<()> {
        let gate = read(&self.gate);
        if gate.committed {
            return Ok(());
        }
        let _persist = lock(&self.persist);
        // Snapshot before syncing: every range in it was written before it was recorded.
        let (meta, ranges) = {
            let state = lock(&self.state);
            (state.meta.clone(), state.ranges.0.clone())
        };
        gate.data.sync_data()?;
        // No directory fsync: losing this rename leaves the previous index, whose coverage
        // is a subset of this one under the same meta (reset syncs the directory itself).
        self.write_index(meta.as_ref(), &ranges)
    }

    /// Whether the meta is known and `[0, meta.len)` is covered entirely.
    pub(crate) fn is_complete(&self) -> bool {
        lock(&self.state).is_complete()
    }

    /// A body recorded with [`UNKNOWN_LEN`] ended at `len`: from now on that is its
    /// length. `false` when the meta had a length already, or coverage reaches past `len`.
    pub(crate) fn set_len(&self, len: u64) -> bool {
        let mut state = lock(&self.state);
        let beyond = state.ranges.0.last().is_some_and(|r| r.end > len);
        match &mut state.meta {
            Some(meta) if meta.len == UNKNOWN_LEN && !beyond => {
                meta.len = len;
                true
            }
            _ => false,
        }
    }

    /// Turns the complete partial data into the asset's body, then runs eviction.
    ///
    /// Steps: sync the data; unlink any older body; write and fsync `file/meta` (by temp
    /// name and rename) and fsync the directory; rename `part` to `body`; fsync the
    /// directory; remove the index. After the rename, `write_at`, `reset` and `checkpoint`
    /// are no-ops returning `Ok`, and `read_at` keeps serving the same bytes. Calling it
    /// again after success is a no-op.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if not [`PartialFile::is_complete`]. I/O errors of the steps: before
    /// the rename nothing is committed (retrying is fine); after it `is_committed()` is
    /// true and the body is in place, only its durability or the index cleanup failed.
    pub(crate) fn commit(&self) -> io::Result<()> {
        {
            let gate = read(&self.gate);
            if gate.committed {
                return Ok(());
            }
            // The long flush happens here, where readers still run.
            gate.data.sync_data()?;
        }
        let mut gate = write(&self.gate);
        if gate.committed {
            return Ok(());
        }
        let meta = {
            let state = lock(&self.state);
            match (&state.meta, state.is_complete()) {
                (Some(meta), true) => meta.clone(),
                _ => return Err(invalid_input("commit of an incomplete download")),
            }
        };
        gate.data.sync_data()?;
        // The old body goes before its meta is replaced; `complete_body` relies on it.
        remove_if_exists(&self.file_dir.join(BODY))?;
        write_durable(
            &self.file_dir.join(META_TMP),
            &self.file_dir.join(META),
            &encode_meta(&meta),
        )?;
        // The new meta must be on disk before a body can appear next to it.
        sync_dir(&self.file_dir)?;
        fs::rename(self.file_dir.join(PART), self.file_dir.join(BODY))?;
        gate.committed = true;
        drop(gate);
        sync_dir(&self.file_dir)?;
        remove_if_exists(&self.file_dir.join(INDEX))?;
        self.lease.cache().evict();
        Ok(())
    }

    /// Whether [`PartialFile::commit`] has renamed the data into place as the body.
    pub(crate) fn is_committed(&self) -> bool {
        read(&self.gate).committed
    }

    fn write_index(&self, meta: Option<&CachedMeta>, ranges: &[Range<u64>]) -> io::Result<()> {
        write_durable(
            &self.file_dir.join(INDEX_TMP),
            &self.file_dir.join(INDEX),
            &encode_index(meta, ranges),
        )
    }
}

// As with `crate::lock`: a panic under these locks leaves no half-updated data.
pub(super) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
