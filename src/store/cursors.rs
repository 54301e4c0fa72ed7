//! Keyset cursors for paging through a workspace's members in id order.
//!
//! An import (Okta's `startIndex=1,101,201,...&count=100`) would otherwise make the
//! database skip `startIndex - 1` rows on every page: quadratic over the whole
//! listing. When a page in the default order (no filter, no sortBy) is served, the
//! id of its last member is remembered under (workspace, position after it); a
//! request for the next page then starts after that id through the
//! `(workspace_id, id)` index. Members are never deleted and ids (UUIDv7) grow with
//! time, so "the rows after this id" and "the rows after this position" are the
//! same rows; a miss (another process, an evicted entry) falls back to OFFSET.
//! Only ids are kept, per database and workspace; the map is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Default)]
pub struct PageCursors {
    map: Mutex<HashMap<(i64, i64), Uuid>>,
    /// A fold of the member counts is running (see `members::count`).
    pub(crate) folding: std::sync::atomic::AtomicBool,
}

impl PageCursors {
    /// The id of the member at zero-based position `offset - 1`, if remembered.
    pub fn get(&self, workspace_id: i64, offset: i64) -> Option<Uuid> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(workspace_id, offset)).copied()
    }

    /// Remember that the member at position `offset - 1` has id `last`.
    pub fn put(&self, workspace_id: i64, offset: i64, last: Uuid) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            // Imports walk forward: older positions are the least likely to be asked
            // for again. Dropping everything is simple and bounded.
            map.clear();
        }
        // The cursor for this position is used up once the next one exists.
        map.insert((workspace_id, offset), last);
    }
}

/// The smallest UUIDv7 of the millisecond `unix_ms`: every id minted at or after
/// that millisecond sorts at or above it (as bytes, which is how both databases
/// compare them).
pub fn v7_floor(unix_ms: u64) -> Uuid {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
    b[6] = 0x70;
    b[8] = 0x80;
    Uuid::from_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_per_workspace_and_bounded() {
        let c = PageCursors::default();
        let id = Uuid::now_v7();
        c.put(1, 100, id);
        assert_eq!(c.get(1, 100), Some(id));
        assert_eq!(c.get(2, 100), None);
        assert_eq!(c.get(1, 200), None);
        for i in 0..(MAX_ENTRIES as i64 + 10) {
            c.put(3, i, id);
        }
        assert!(c.map.lock().unwrap().len() <= MAX_ENTRIES);
    }

    #[test]
    fn v7_floor_sorts_below_ids_of_that_millisecond_and_above_earlier_ones() {
        let id = Uuid::now_v7();
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        let ms = secs * 1000 + u64::from(nanos) / 1_000_000;
        assert!(v7_floor(ms).as_bytes() <= id.as_bytes());
        assert!(v7_floor(ms + 1).as_bytes() > id.as_bytes());
        assert!(v7_floor(ms - 1).as_bytes() < id.as_bytes());
    }
}
