//! A set of byte ranges: what a partial cache file holds, what a session has received.

use std::ops::Range;

/// Sorted, disjoint, non-touching, non-empty ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RangeSet(pub(crate) Vec<Range<u64>>);

impl RangeSet {
    pub(crate) fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // Sequential downloads only ever extend the last range or start a new one after it.
        match self.0.last_mut() {
            None => {
                self.0.push(r);
                return;
            }
            Some(last) if r.start > last.end => {
                self.0.push(r);
                return;
            }
            Some(last) if r.start >= last.start => {
                last.end = last.end.max(r.end);
                return;
            }
            Some(_) => {}
        }
        // Ranges in [lo, hi) overlap or touch `r`; ends are sorted because ranges are disjoint.
        let lo = self.0.partition_point(|x| x.end < r.start);
        let hi = self.0.partition_point(|x| x.start <= r.end);
        if lo == hi {
            self.0.insert(lo, r);
        } else {
            let merged = r.start.min(self.0[lo].start)..r.end.max(self.0[hi - 1].end);
            self.0.drain(lo + 1..hi);
            self.0[lo] = merged;
        }
    }

    /// If `pos` lies inside a range, that range's end.
    pub(crate) fn covered_end(&self, pos: u64) -> Option<u64> {
        let i = self.0.partition_point(|x| x.end <= pos);
        self.0.get(i).filter(|x| x.start <= pos).map(|x| x.end)
    }

    /// The start of the first range that starts strictly after `pos`.
    pub(crate) fn next_start_after(&self, pos: u64) -> Option<u64> {
        let i = self.0.partition_point(|x| x.start <= pos);
        self.0.get(i).map(|x| x.start)
    }

    /// Whether every byte of `0..len` is in the set (an empty file always is).
    pub(crate) fn covers_all(&self, len: u64) -> bool {
        len == 0 || matches!(self.0.as_slice(), [r] if r.start == 0 && r.end >= len)
    }
}

#[cfg(test)]
#[allow(
    clippy::single_range_in_vec_init,
    reason = "expected coverage is written as a list of ranges"
)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges() {
        let mut set = RangeSet::default();
        set.insert(10..20);
        set.insert(20..30);
        assert_eq!(set.0, [10..30]);
        set.insert(40..50);
        set.insert(0..5);
        assert_eq!(set.0, [0..5, 10..30, 40..50]);
        set.insert(5..10);
        assert_eq!(set.0, [0..30, 40..50]);
        set.insert(25..45);
        assert_eq!(set.0, [0..50]);
        set.insert(7..7);
        set.insert(60..70);
        set.insert(55..58);
        assert_eq!(set.0, [0..50, 55..58, 60..70]);
        set.insert(50..100);
        assert_eq!(set.0, [0..100]);
    }

    #[test]
    fn covers_all_needs_one_range_from_zero() {
        let mut set = RangeSet::default();
        assert!(set.covers_all(0));
        assert!(!set.covers_all(10));
        set.insert(1..10);
        assert!(!set.covers_all(10));
        set.insert(0..1);
        assert!(set.covers_all(10));
        assert!(!set.covers_all(11));
    }
}
