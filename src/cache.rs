//! The on-disk asset cache: a second play of the same URL is served from disk, offline.
//!
//! Layout under the cache root (everything an asset owns lives in its own directory):
//!
//! ```text
//! <root>/<asset_id>/lock              leases hold it shared, eviction takes it exclusive
//! <root>/<asset_id>/writer.lock       held exclusive by the one writer of the asset
//! <root>/<asset_id>/used              its mtime is the last-used time (LRU eviction)
//! <root>/<asset_id>/removing          removal requested while leased: the last lease removes it
//! <root>/<asset_id>/file/body         a complete file, byte for byte; immutable once in place
//! <root>/<asset_id>/file/meta         length + validators of `body` (checksummed)
//! <root>/<asset_id>/file/part         data of a partial download (sparse, random access)
//! <root>/<asset_id>/file/part.index   covered ranges of `part` + validators (checksummed)
//! <root>/<asset_id>/file/*.tmp        temp names for atomic replacement of meta and index
//! <root>/.trash-*                     an asset being evicted (renamed away, then removed)
//! ```
//!
//! Concurrency model: any number of sessions, in this process or others, may lease an
//! asset; exactly one of them at a time can be its writer. Locks are `flock`-style file
//! locks, so a killed process releases them with its last descriptor: no decision here is
//! ever made from the mere existence of a file.
//!
//! Its parts: [`asset_id`] (names), [`handle`] (the root, leases registry, eviction),
//! [`lease`] (one asset pinned), [`partial`] (a download in progress and its commit),
//! [`records`] (meta and index files), [`files`] (the file system steps), [`manage`]
//! (what an app lists and removes).

mod asset_id;
mod files;
mod handle;
mod lease;
mod manage;
mod partial;
mod records;
#[cfg(test)]
mod tests;

#[allow(unused_imports)]
use {files::*, handle::*, lease::*, partial::*, records::*};

pub use asset_id::AssetId;
pub use handle::AssetCache;
pub(crate) use lease::AssetLease;
pub use manage::CacheEntry;
pub(crate) use partial::PartialFile;
pub(crate) use records::{CachedMeta, UNKNOWN_LEN};

const LOCK: &str = "lock";
const WRITER_LOCK: &str = "writer.lock";
const USED: &str = "used";
const REMOVING: &str = "removing";
const FILE_DIR: &str = "file";
const BODY: &str = "body";
const META: &str = "meta";
const META_TMP: &str = "meta.tmp";
const PART: &str = "part";
const INDEX: &str = "part.index";
const INDEX_TMP: &str = "part.index.tmp";
const TRASH_PREFIX: &str = ".trash-";
const PROBE_PREFIX: &str = ".probe-";

const META_MAGIC: &[u8; 8] = b"KFMETA01";
const INDEX_MAGIC: &[u8; 8] = b"KFPIDX01";
const CHECKSUM_LEN: usize = 32;
/// Meta and index files are tiny; anything larger is not ours and is not read whole.
const MAX_RECORD_LEN: u64 = 16 << 20;
/// A lease retries when eviction removes the directory between its open and its lock;
/// more than a few rounds means something else keeps deleting the directory.
const LEASE_ATTEMPTS: usize = 8;
