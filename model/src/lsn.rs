//! Log sequence numbers and WAL geometry (xlogdefs.h, xlog_internal.h).
//!
//! An [`Lsn`] is a byte position in the WAL stream. WAL is laid out in
//! `XLOG_BLCKSZ` pages, each starting with a page header (a long one at the
//! start of every segment), so the position of the next record is not just
//! "previous end + length": [`WalGeometry`] converts between LSNs and
//! "usable byte positions" exactly as xlog.c does, which is what makes
//! record boundaries, segment starts and WAL file names look like the real
//! server's.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A WAL position (`XLogRecPtr`).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lsn(pub u64);

pub use crate::ids::Tli;

impl Lsn {
    /// `InvalidXLogRecPtr`.
    pub const INVALID: Lsn = Lsn(0);

    pub fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// Formats the LSN with the given style.
    pub fn fmt_with(self, style: LsnFormat) -> LsnDisplay {
        LsnDisplay { lsn: self, style }
    }

    /// Parses a whole string such as `0/3000148` or `0/03000148` (either
    /// style; surrounding whitespace allowed).
    pub fn parse(text: &str) -> Option<Lsn> {
        let text = text.trim();
        match Self::parse_prefix(text) {
            Some((lsn, used)) if used == text.len() => Some(lsn),
            _ => None,
        }
    }

    /// Parses an LSN at the start of `text`; returns it and the bytes
    /// consumed. Both halves are 1–8 hex digits (`pg_waldump` zero-pads the
    /// low half).
    pub fn parse_prefix(text: &str) -> Option<(Lsn, usize)> {
        let hex_run = |b: &[u8]| b.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let bytes = text.as_bytes();
        let hi_len = hex_run(bytes);
        if hi_len == 0 || hi_len > 8 || bytes.get(hi_len) != Some(&b'/') {
            return None;
        }
        let lo_len = hex_run(&bytes[hi_len + 1..]);
        if lo_len == 0 || lo_len > 8 {
            return None;
        }
        let hi = u64::from_str_radix(&text[..hi_len], 16).ok()?;
        let lo = u64::from_str_radix(&text[hi_len + 1..hi_len + 1 + lo_len], 16).ok()?;
        Some((Lsn((hi << 32) | lo), hi_len + 1 + lo_len))
    }

    /// The LSN right after the first occurrence of `marker` in `text` (a
    /// server log line).
    pub fn after(text: &str, marker: &str) -> Option<Lsn> {
        let at = text.find(marker)? + marker.len();
        Self::parse_prefix(&text[at..]).map(|(lsn, _)| lsn)
    }

    /// Every LSN-looking word of `text`, in order (trailing punctuation
    /// ignored).
    pub fn find_all(text: &str) -> Vec<Lsn> {
        text.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
            .filter_map(|word| Self::parse(word.trim_end_matches(['.', ':', ';'])))
            .collect()
    }
}

impl fmt::Display for Lsn {
    /// PostgreSQL 17 and earlier: `%X/%X` (`0/2D0C99D8`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 as u32)
    }
}

/// How LSNs are printed: the classic `%X/%X` or the zero-padded low half of
/// newer servers (`%X/%08X`, `0/03000060`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum LsnFormat {
    #[default]
    #[serde(rename = "%X/%X")]
    Classic,
    #[serde(rename = "%X/%08X")]
    Padded,
}

/// An LSN bound to a print style.
pub struct LsnDisplay {
    lsn: Lsn,
    style: LsnFormat,
}

impl fmt::Display for LsnDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (hi, lo) = (self.lsn.0 >> 32, self.lsn.0 as u32);
        match self.style {
            LsnFormat::Classic => write!(f, "{hi:X}/{lo:X}"),
            LsnFormat::Padded => write!(f, "{hi:X}/{lo:08X}"),
        }
    }
}

/// `XLOG_BLCKSZ`: PostgreSQL's default WAL page size (`configure
/// --with-wal-blocksize`, 1..64 kB, read back as the `wal_block_size`
/// setting). The model's page size is the `wal_block_size` setting, which
/// defaults smaller (docs/model.md); this is what the real server uses.
pub const XLOG_BLCKSZ: u64 = 8192;
/// `SizeOfXLogShortPHD`: header of every WAL page but the first of a segment.
pub const SIZE_OF_XLOG_SHORT_PHD: u64 = 24;
/// `SizeOfXLogLongPHD`: header of the first page of a segment.
pub const SIZE_OF_XLOG_LONG_PHD: u64 = 40;
/// `MAXIMUM_ALIGNOF` on the usual 64-bit platforms.
pub const MAXALIGN: u64 = 8;

/// Rounds a length up to `MAXALIGN`.
pub const fn maxalign(len: u64) -> u64 {
    (len + MAXALIGN - 1) & !(MAXALIGN - 1)
}

/// WAL segment geometry: converts positions the way xlog.c does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WalGeometry {
    segment_size: u64,
    /// `XLOG_BLCKSZ` of this build (`wal_block_size`).
    block_size: u64,
    usable_bytes_in_segment: u64,
}

impl WalGeometry {
    /// Segments of `segment_size` in PostgreSQL's default 8 kB WAL pages.
    pub fn new(segment_size: u64) -> WalGeometry {
        WalGeometry::with_block_size(segment_size, XLOG_BLCKSZ)
    }

    /// `segment_size` and `block_size` must be powers of two, the segment
    /// at least two WAL pages and a page at least 1 kB (validated by the
    /// settings; PostgreSQL itself requires 1 MiB..1 GiB segments and
    /// 1..64 kB pages).
    pub fn with_block_size(segment_size: u64, block_size: u64) -> WalGeometry {
        assert!(block_size.is_power_of_two() && block_size >= 1024);
        assert!(segment_size.is_power_of_two() && segment_size >= 2 * block_size);
        let pages = segment_size / block_size;
        WalGeometry {
            segment_size,
            block_size,
            usable_bytes_in_segment: pages * (block_size - SIZE_OF_XLOG_SHORT_PHD)
                - (SIZE_OF_XLOG_LONG_PHD - SIZE_OF_XLOG_SHORT_PHD),
        }
    }

    /// `XLOG_BLCKSZ`: the WAL page size.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// `UsableBytesInPage`.
    fn usable_bytes_in_page(&self) -> u64 {
        self.block_size - SIZE_OF_XLOG_SHORT_PHD
    }

    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// `XLByteToSeg`.
    pub fn segno(&self, lsn: Lsn) -> u64 {
        lsn.0 / self.segment_size
    }

    /// Start of the segment holding `lsn` (where a walreceiver asks to
    /// start streaming, RequestXLogStreaming).
    pub fn segment_start(&self, lsn: Lsn) -> Lsn {
        Lsn(lsn.0 - lsn.0 % self.segment_size)
    }

    /// `XLogFileName`: `%08X%08X%08X` of timeline, segment / segments-per-xlogid
    /// and segment % segments-per-xlogid.
    pub fn wal_file_name(&self, tli: Tli, lsn: Lsn) -> String {
        let per_id = 0x1_0000_0000 / self.segment_size;
        let segno = self.segno(lsn);
        format!("{:08X}{:08X}{:08X}", tli, segno / per_id, segno % per_id)
    }

    /// `XLogBytePosToRecPtr`: where a record starting at usable byte
    /// position `pos` begins (past any page header).
    pub fn bytepos_to_recptr(&self, pos: u64) -> Lsn {
        let fullsegs = pos / self.usable_bytes_in_segment;
        let mut left = pos % self.usable_bytes_in_segment;
        let offset = if left < self.block_size - SIZE_OF_XLOG_LONG_PHD {
            left + SIZE_OF_XLOG_LONG_PHD
        } else {
            left -= self.block_size - SIZE_OF_XLOG_LONG_PHD;
            let fullpages = left / self.usable_bytes_in_page();
            left %= self.usable_bytes_in_page();
            self.block_size + fullpages * self.block_size + left + SIZE_OF_XLOG_SHORT_PHD
        };
        Lsn(fullsegs * self.segment_size + offset)
    }

    /// `XLogBytePosToEndRecPtr`: like [`Self::bytepos_to_recptr`], but a
    /// position exactly at a page boundary maps to the boundary itself, as
    /// the end of the record that filled the page.
    pub fn bytepos_to_endrecptr(&self, pos: u64) -> Lsn {
        let fullsegs = pos / self.usable_bytes_in_segment;
        let mut left = pos % self.usable_bytes_in_segment;
        let offset = if left < self.block_size - SIZE_OF_XLOG_LONG_PHD {
            if left == 0 { 0 } else { left + SIZE_OF_XLOG_LONG_PHD }
        } else {
            left -= self.block_size - SIZE_OF_XLOG_LONG_PHD;
            let fullpages = left / self.usable_bytes_in_page();
            left %= self.usable_bytes_in_page();
            let header = if left == 0 { 0 } else { SIZE_OF_XLOG_SHORT_PHD };
            self.block_size + fullpages * self.block_size + left + header
        };
        Lsn(fullsegs * self.segment_size + offset)
    }

    /// `XLogRecPtrToBytePos`: the inverse of both conversions above.
    pub fn recptr_to_bytepos(&self, lsn: Lsn) -> u64 {
        let fullsegs = lsn.0 / self.segment_size;
        let offset = lsn.0 % self.segment_size;
        let fullpages = offset / self.block_size;
        let in_page = offset % self.block_size;
        let base = fullsegs * self.usable_bytes_in_segment;
        if fullpages == 0 {
            base + in_page.saturating_sub(SIZE_OF_XLOG_LONG_PHD)
        } else {
            base + (self.block_size - SIZE_OF_XLOG_LONG_PHD)
                + (fullpages - 1) * self.usable_bytes_in_page()
                + in_page.saturating_sub(SIZE_OF_XLOG_SHORT_PHD)
        }
    }

    /// Usable byte position at the start of the segment after the one
    /// holding `lsn` (what an `XLOG_SWITCH` record skips to).
    pub fn bytepos_of_next_segment(&self, lsn: Lsn) -> u64 {
        (self.segno(lsn) + 1) * self.usable_bytes_in_segment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_postgres() {
        let l = Lsn(0x2D0C_99D8);
        assert_eq!(l.to_string(), "0/2D0C99D8");
        assert_eq!(Lsn(0x0300_0060).fmt_with(LsnFormat::Padded).to_string(), "0/03000060");
        assert_eq!(Lsn(0x0300_0060).to_string(), "0/3000060");
        assert_eq!(Lsn((1 << 32) | 0x28).to_string(), "1/28");
        assert_eq!(Lsn::parse("0/52000000"), Some(Lsn(0x5200_0000)));
        assert_eq!(Lsn::parse("1/28"), Some(Lsn((1 << 32) | 0x28)));
        assert_eq!(Lsn::parse("zz"), None);
    }

    #[test]
    fn wal_file_names_match_postgres() {
        let g = WalGeometry::new(16 << 20);
        assert_eq!(g.wal_file_name(Tli(1), Lsn(0x5243_8570)), "000000010000000000000052");
        assert_eq!(g.wal_file_name(Tli(2), Lsn((1 << 32) | 5)), "000000020000000100000000");
        assert_eq!(g.segment_start(Lsn(0x5243_8570)), Lsn(0x5200_0000));
        let small = WalGeometry::new(1 << 20);
        assert_eq!(small.wal_file_name(Tli(1), Lsn(0x0530_0000)), "000000010000000000000053");
    }

    #[test]
    fn first_record_follows_long_header() {
        let g = WalGeometry::new(16 << 20);
        assert_eq!(g.bytepos_to_recptr(0), Lsn(40));
        assert_eq!(g.bytepos_to_endrecptr(0), Lsn(0));
        // The first byte past the first page lands after a short header.
        let first_page = XLOG_BLCKSZ - SIZE_OF_XLOG_LONG_PHD;
        assert_eq!(g.bytepos_to_recptr(first_page), Lsn(XLOG_BLCKSZ + 24));
        assert_eq!(g.bytepos_to_endrecptr(first_page), Lsn(XLOG_BLCKSZ));
    }

    /// With 1 kB WAL pages (`wal_block_size`), page headers fall every
    /// 1024 bytes, as in a server built `--with-wal-blocksize=1`.
    #[test]
    fn small_wal_pages_put_headers_every_page() {
        let g = WalGeometry::with_block_size(4096, 1024);
        assert_eq!(g.block_size(), 1024);
        assert_eq!(g.bytepos_to_recptr(0), Lsn(40));
        assert_eq!(g.bytepos_to_recptr(1024 - 40), Lsn(1024 + 24));
        assert_eq!(g.bytepos_to_endrecptr(1024 - 40), Lsn(1024));
        // Four pages: 40 + 3 × 24 bytes of headers, so the second segment
        // starts at usable byte 4096 - 112.
        assert_eq!(g.bytepos_to_recptr(4096 - 112), Lsn(4096 + 40));
        assert_eq!(g.wal_file_name(Tli(1), Lsn(4096 * 3 + 50)), "000000010000000000000003");
        assert_eq!(WalGeometry::new(1 << 20), WalGeometry::with_block_size(1 << 20, XLOG_BLCKSZ));
    }

    #[test]
    fn conversions_round_trip() {
        for (seg, blk) in [
            (1u64 << 14, XLOG_BLCKSZ),
            (1 << 20, XLOG_BLCKSZ),
            (16 << 20, XLOG_BLCKSZ),
            (1 << 12, 1024),
            (1 << 11, 1024),
            (1 << 16, 2048),
        ] {
            let g = WalGeometry::with_block_size(seg, blk);
            for pos in (0..4 * seg).step_by(977) {
                let start = g.bytepos_to_recptr(pos);
                assert_eq!(g.recptr_to_bytepos(start), pos, "seg {seg} blk {blk} pos {pos}");
                let end = g.bytepos_to_endrecptr(pos);
                assert_eq!(g.recptr_to_bytepos(end), pos, "seg {seg} pos {pos}");
                assert!(end <= start);
            }
        }
    }

    /// MAXALIGN rounds up to 8 and leaves multiples of 8 alone.
    #[test]
    fn maxalign_rounds_up_to_eight() {
        let cases = [(0, 0), (1, 8), (7, 8), (8, 8), (9, 16), (15, 16), (16, 16), (24, 24), (114, 120)];
        for (len, aligned) in cases {
            assert_eq!(maxalign(len), aligned, "maxalign({len})");
        }
    }

    /// Exact positions of the first records after initdb, as PostgreSQL
    /// computes them: the shutdown checkpoint right after the long page
    /// header (0/28, 114 bytes, MAXALIGNed to 120), then an insert (118 →
    /// 120), a commit (34 → 40) and an abort, each starting where the
    /// previous one's aligned end is.
    #[test]
    fn first_records_after_initdb_have_exact_lsns() {
        use crate::heap::Tuple;
        use crate::ids::{BlockNumber, Xid};
        use crate::wal::{CheckPoint, RecordBody, Wal};
        let mut w = Wal::new(WalGeometry::new(1 << 24));
        let c = CheckPoint { redo: Lsn(0x28), tli: Tli(1), prev_tli: Tli(1), next_xid: Xid(3) };
        let tuple = Tuple { key: 1, payload: 7, xmin: Xid(3), xmax: Xid::INVALID, infomask: 0 };
        let bodies = [
            RecordBody::CheckpointShutdown(c),
            RecordBody::HeapInsert { block: BlockNumber(0), offnum: 1, tuple, image: None },
            RecordBody::Commit,
            RecordBody::Abort,
        ];
        let sizes: Vec<u64> = bodies.iter().map(|b| b.size()).collect();
        assert_eq!(sizes, [114, 118, 34, 34]);
        let got: Vec<(String, String)> = bodies
            .into_iter()
            .map(|b| {
                let r = w.insert(Tli(1), Xid(3), b);
                (r.lsn.to_string(), r.end.to_string())
            })
            .collect();
        let want = [("0/28", "0/A0"), ("0/A0", "0/118"), ("0/118", "0/140"), ("0/140", "0/168")];
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want);
    }

    /// The LSN printed right after a marker in a server log line.
    #[test]
    fn after_reads_the_lsn_following_a_marker() {
        let line = "FATAL:  requested starting point 0/3000000 on timeline 1 is not in this server's history";
        assert_eq!(Lsn::after(line, "requested starting point "), Some(Lsn(0x300_0000)));
        assert_eq!(Lsn::after(line, "on timeline "), None, "no %X/%X there");
        assert_eq!(Lsn::after(line, "diverged at "), None, "no marker");
    }

    /// `XLogRecPtrIsInvalid`: only 0/0 is invalid.
    #[test]
    fn only_zero_is_an_invalid_lsn() {
        assert!(!Lsn::INVALID.is_valid());
        assert!(!Lsn(0).is_valid());
        assert!(Lsn(1).is_valid());
        assert!(Lsn(0x28).is_valid());
    }

    /// A whole string is one LSN (surrounding blanks allowed), in either
    /// print style; each half has 1 to 8 hex digits, separated by `/`.
    #[test]
    fn parse_takes_a_whole_lsn_of_one_to_eight_hex_digits_each_side() {
        assert_eq!(Lsn::parse("  0/3000148\n"), Some(Lsn(0x300_0148)));
        assert_eq!(Lsn::parse("0/03000148"), Some(Lsn(0x300_0148)), "%X/%08X");
        assert_eq!(Lsn::parse("FFFFFFFF/FFFFFFFF"), Some(Lsn(u64::MAX)), "eight digits each side");
        assert_eq!(Lsn::parse("12/345"), Some(Lsn((0x12 << 32) | 0x345)));
        assert_eq!(Lsn::parse("aB/cD"), Some(Lsn((0xab << 32) | 0xcd)), "either case");
        for bad in
            ["", "/28", "0/", "0-28", "028", "100000000/0", "0/100000000", "0/28x", "0/28 0/30", "x0/28"]
        {
            assert_eq!(Lsn::parse(bad), None, "{bad:?}");
        }
    }

    /// `parse_prefix` reads an LSN at the start of a text and says how
    /// many bytes it used; what follows is left alone.
    #[test]
    fn parse_prefix_reports_the_bytes_it_used() {
        assert_eq!(Lsn::parse_prefix("0/28"), Some((Lsn(0x28), 4)));
        assert_eq!(Lsn::parse_prefix("1A/2B3C, then"), Some((Lsn((0x1a << 32) | 0x2b3c), 7)));
        assert_eq!(Lsn::parse_prefix("12345678/9ABCDEF0."), Some((Lsn(0x1234_5678_9abc_def0), 17)));
        assert_eq!(Lsn::parse_prefix("3/4/5"), Some((Lsn((3 << 32) | 4), 3)));
        assert_eq!(Lsn::parse_prefix(" 0/28"), None, "no leading blank");
        assert_eq!(Lsn::parse_prefix("123456789/0"), None, "nine digits");
        assert_eq!(Lsn::parse_prefix("0/123456789"), None, "nine digits");
        assert_eq!(Lsn::parse_prefix("0/g"), None);
        assert_eq!(Lsn::parse_prefix("0:28"), None);
    }

    /// Every LSN of a log line, in order, with the punctuation around
    /// them (commas, parentheses, a final period, colon or semicolon)
    /// ignored; words that are not LSNs are skipped.
    #[test]
    fn find_all_picks_every_lsn_of_a_line() {
        let line = "redo at 0/2000028;\tcheckpoint (0/3000060,1/28) ends: 0/4000000. done";
        assert_eq!(
            Lsn::find_all(line),
            [Lsn(0x200_0028), Lsn(0x300_0060), Lsn((1 << 32) | 0x28), Lsn(0x400_0000)]
        );
        assert_eq!(Lsn::find_all("new timeline 2 forked off at 0/5000000:"), [Lsn(0x500_0000)]);
        assert_eq!(Lsn::find_all("no position here"), []);
    }

    /// Both print styles show the high half unpadded; the padded one
    /// zero-pads the low half to eight digits.
    #[test]
    fn both_print_styles_show_both_halves() {
        let l = Lsn((0x1f << 32) | 0x60);
        assert_eq!(l.fmt_with(LsnFormat::Classic).to_string(), "1F/60");
        assert_eq!(l.fmt_with(LsnFormat::Padded).to_string(), "1F/00000060");
        assert_eq!(l.to_string(), "1F/60");
        assert_eq!(Lsn(0).fmt_with(LsnFormat::Padded).to_string(), "0/00000000");
    }

    /// A segment of 4 pages of 1 kB: a long header (40 bytes) on the first
    /// page, short ones (24) on the three others, so 4 × 1000 − 16 = 3984
    /// usable bytes. Every conversion, at and around each boundary.
    #[test]
    fn positions_at_page_and_segment_boundaries_are_exact() {
        let g = WalGeometry::with_block_size(4096, 1024);
        assert_eq!((g.block_size(), g.segment_size(), g.usable_bytes_in_page()), (1024, 4096, 1000));
        // (usable byte position, record start, record end)
        let table = [
            (0, 40, 0),
            (1, 41, 41),
            (983, 1023, 1023),
            // 984 = 1024 − 40: the first page is full.
            (984, 1024 + 24, 1024),
            (985, 1024 + 25, 1024 + 25),
            (1983, 2047, 2047),
            (1984, 2048 + 24, 2048),
            (2984, 3072 + 24, 3072),
            (3983, 4095, 4095),
            // 3984: the segment is full; the next starts with a long header.
            (3984, 4096 + 40, 4096),
            (3985, 4096 + 41, 4096 + 41),
            (3984 + 984, 5120 + 24, 5120),
            (3 * 3984 + 1990, 3 * 4096 + 2048 + 30, 3 * 4096 + 2048 + 30),
        ];
        for (pos, start, end) in table {
            assert_eq!(g.bytepos_to_recptr(pos), Lsn(start), "start of {pos}");
            assert_eq!(g.bytepos_to_endrecptr(pos), Lsn(end), "end of {pos}");
            assert_eq!(g.recptr_to_bytepos(Lsn(start)), pos, "position of {start}");
            assert_eq!(g.recptr_to_bytepos(Lsn(end)), pos, "position of {end}");
        }
        // Inside a page header: the position of the page's first byte.
        assert_eq!(g.recptr_to_bytepos(Lsn(20)), 0);
        assert_eq!(g.recptr_to_bytepos(Lsn(1024 + 10)), 984);
        assert_eq!(g.recptr_to_bytepos(Lsn(4096 + 39)), 3984);
    }

    /// Segment numbers, starts and what an `XLOG_SWITCH` skips to.
    #[test]
    fn segment_numbers_starts_and_the_next_segment() {
        let g = WalGeometry::with_block_size(4096, 1024);
        assert_eq!(g.segno(Lsn(0)), 0);
        assert_eq!(g.segno(Lsn(4095)), 0);
        assert_eq!(g.segno(Lsn(4096)), 1);
        assert_eq!(g.segno(Lsn(3 * 4096 + 7)), 3);
        assert_eq!(g.segment_start(Lsn(3 * 4096 + 7)), Lsn(3 * 4096));
        assert_eq!(g.segment_start(Lsn(4096)), Lsn(4096));
        assert_eq!(g.segment_start(Lsn(4095)), Lsn(0));
        // 3984 usable bytes a segment: the next segment of 0/C07 (segment
        // 3) starts at usable byte 4 × 3984, that is at 0/4028.
        assert_eq!(g.bytepos_of_next_segment(Lsn(3 * 4096 + 7)), 4 * 3984);
        assert_eq!(g.bytepos_to_recptr(g.bytepos_of_next_segment(Lsn(3 * 4096 + 7))), Lsn(4 * 4096 + 40));
        assert_eq!(g.bytepos_of_next_segment(Lsn(40)), 3984);
        // 8 kB pages, 1 MB segments: 128 × 8168 − 16 = 1,045,488 usable
        // bytes a segment.
        let g = WalGeometry::new(1 << 20);
        assert_eq!((g.block_size(), g.segment_size(), g.usable_bytes_in_page()), (8192, 1 << 20, 8168));
        assert_eq!(g.bytepos_of_next_segment(Lsn(0x10_0028)), 2 * 1_045_488);
        assert_eq!(g.bytepos_to_recptr(2 * 1_045_488), Lsn(0x20_0028));
        assert_eq!(g.segno(Lsn(0x5243_8570)), 0x524);
    }
}
