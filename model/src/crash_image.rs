//! Crash images: which unsynced writes reached the disk before a power
//! loss. `faults.crash_images` lets a power loss choose among the images
//! the unsynced WAL, data pages, CLOG pages and pg_control allow (one
//! argument per image), instead of always "nothing reached the disk". Not
//! a PostgreSQL part: the disk's side of a crash, as an `impl Node` block
//! over the files `node.rs` holds; `Node::crash` (node.rs) then loses what
//! did not reach the disk.

use crate::client::mix;
use crate::control::ControlFileData;
use crate::log::Process;
use crate::lsn::Lsn;
use crate::node::{Ctx, Node};
use crate::slog;

impl Node {
    /// The WAL ends a power loss may keep, the unsynced data and CLOG pages,
    /// and the number of distinct images (`u64::MAX`: 2^60 or more). An
    /// unsynced pg_control write (`rules.fsync_control_file` off) is one
    /// more page that reached the disk or not.
    fn crash_image_space(&self) -> (Vec<Lsn>, u32, u32, u64) {
        let (flush, write) = (self.wal.flush_lsn(), self.wal.write_lsn());
        let mut wal_ends = vec![flush];
        wal_ends.extend(self.wal.records().iter().map(|r| r.end).filter(|&e| e > flush && e <= write));
        let (kd, kc) = (self.data.unsynced().len() as u32, self.clog.file.unsynced().len() as u32);
        let bits = kd + kc + u32::from(self.control_unsynced.is_some());
        let total = if bits >= 60 { u64::MAX } else { (wal_ends.len() as u64).saturating_mul(1 << bits) };
        (wal_ends, kd, kc, total)
    }

    /// After a step, with `rules.fsync_control_file` off: pg_control changed
    /// since `before` by a write without fsync, so its durable image stays
    /// where it was (the oldest lost update's predecessor); `synced`: the
    /// writer synced it after all (pg_rewind and base backups sync what
    /// they copy).
    pub fn note_control_write(&mut self, before: ControlFileData, synced: bool) {
        if self.control == before {
            return;
        }
        if synced || self.control_unsynced == Some(self.control) {
            self.control_unsynced = None;
        } else if self.control_unsynced.is_none() {
            self.control_unsynced = Some(before);
        }
    }

    /// How many distinct crash images a power loss now chooses among, with
    /// `faults.crash_images = bound` (the arguments `0..` that number give
    /// each once).
    pub fn crash_image_count(&self, bound: u32) -> u64 {
        self.crash_image_space().3.min(u64::from(bound.max(1)))
    }

    /// The writes that reached the disk before a power loss, as crash image
    /// `arg` of at most `bound` (`faults.crash_images`): a subset of the
    /// unsynced data and CLOG pages, and the unflushed WAL up to one of its
    /// record ends. Image 0 of an enumeration is "nothing reached the
    /// disk" (what a power loss without crash images leaves).
    pub fn reach_disk(&mut self, arg: u64, bound: u32, ctx: &mut Ctx<'_>) {
        let (wal_ends, kd, kc, total) = self.crash_image_space();
        let bound = u64::from(bound.max(1));
        let (image, mut x) = if total <= bound {
            let i = arg % total;
            (i, i)
        } else {
            // Sampled: N images, each a hash of its number, but image 0 is
            // always "nothing reached the disk" (the single image's), so
            // the images include the default's.
            let i = arg % bound;
            (i, if i == 0 { 0 } else { mix(i ^ 0x696d_6167_6573) })
        };
        let w = (x % wal_ends.len() as u64) as usize;
        x /= wal_ends.len() as u64;
        // One bit per unsynced page, 48 from each word of a mixed stream.
        let mut next_bit = {
            let mut word = x;
            let mut n = 0u32;
            move || {
                if n > 0 && n.is_multiple_of(48) {
                    word = mix(word ^ u64::from(n));
                }
                let b = (word >> (n % 48)) & 1 == 1;
                n += 1;
                b
            }
        };
        let data_bits: Vec<bool> = (0..kd).map(|_| next_bit()).collect();
        let clog_bits: Vec<bool> = (0..kc).map(|_| next_bit()).collect();
        let control = self.control_unsynced.is_some().then(&mut next_bit);
        self.data.sync_some(|i| data_bits[i]);
        self.clog.file.sync_some(|i| clog_bits[i]);
        self.wal.flush_upto(wal_ends[w]);
        if control == Some(true) {
            self.control_unsynced = None;
        }
        slog!(
            ctx.log,
            self.id,
            Process::Postmaster,
            Log,
            "crash image {image} of {}: {} of {kd} unsynced data pages and {} of {kc} CLOG pages reached the disk{}, WAL to {}",
            if total == u64::MAX { "2^60+".to_string() } else { total.min(bound).to_string() },
            data_bits.iter().filter(|&&b| b).count(),
            clog_bits.iter().filter(|&&b| b).count(),
            match control {
                Some(true) => ", pg_control's unsynced update too",
                Some(false) => ", pg_control's unsynced update did not",
                None => "",
            },
            wal_ends[w]
        );
    }
}
