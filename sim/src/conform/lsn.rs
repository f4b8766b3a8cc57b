//! WAL positions ("LSNs") as PostgreSQL prints them: `%X/%X`.
//!
//! Hand-written because the server's messages are the only interface we have to
//! where a walreceiver asked to start and how far an upstream had flushed, and the
//! crate may not depend on a regex engine.

use std::fmt;

/// A WAL position (byte offset in the WAL stream).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses a whole string such as `0/3000148` (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Option<Lsn> {
        let text = text.trim();
        match Self::parse_prefix(text) {
            Some((lsn, used)) if used == text.len() => Some(lsn),
            _ => None,
        }
    }

    /// Parses an LSN at the start of `text`; returns it and the bytes consumed.
    /// Both halves are 1–8 hex digits (`pg_waldump` zero-pads the low half).
    pub fn parse_prefix(text: &str) -> Option<(Lsn, usize)> {
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

    /// The LSN that immediately follows the first occurrence of `marker` in `text`.
    pub fn after(text: &str, marker: &str) -> Option<Lsn> {
        let at = text.find(marker)? + marker.len();
        Self::parse_prefix(&text[at..]).map(|(lsn, _)| lsn)
    }

    /// Every LSN-looking word of `text`, in order (trailing punctuation ignored).
    pub fn find_all(text: &str) -> Vec<Lsn> {
        text.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
            .filter_map(|word| Self::parse(word.trim_end_matches(['.', ':', ';'])))
            .collect()
    }

    /// Start of the WAL segment that holds this position.
    pub fn segment_start(self, segment_size: u64) -> Lsn {
        if segment_size == 0 {
            return self;
        }
        Lsn(self.0 - self.0 % segment_size)
    }

    /// Number of the WAL segment that holds this position.
    pub fn segment_no(self, segment_size: u64) -> u64 {
        self.0.checked_div(segment_size).unwrap_or(0)
    }

    /// Name of the WAL segment file holding this position on timeline `tli`
    /// (XLogFileName).
    pub fn segment_file_name(self, tli: u32, segment_size: u64) -> String {
        let segno = self.segment_no(segment_size);
        let per_id = 0x1_0000_0000u64.checked_div(segment_size).unwrap_or(1).max(1);
        format!("{tli:08X}{:08X}{:08X}", segno / per_id, segno % per_id)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Serialized as PostgreSQL prints it (`%X/%X`), like the LSN strings in `Facts`.
impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn hex_run(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_hexdigit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_postgres() {
        let lsn = Lsn::parse("0/45AD6088").unwrap();
        assert_eq!(lsn, Lsn(0x45AD_6088));
        assert_eq!(lsn.to_string(), "0/45AD6088");
        assert_eq!(Lsn::parse("1/0").unwrap(), Lsn(1 << 32));
        assert_eq!(Lsn(1 << 32).to_string(), "1/0");
        assert_eq!(Lsn::parse(" 0/03000028 ").unwrap(), Lsn(0x300_0028));
        assert_eq!(Lsn::parse("ff/ffffffff").unwrap(), Lsn(0xFF_FFFF_FFFF));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "/", "0/", "/0", "0x1/2", "0/3000148.", "123456789/0", "0/123456789", "g/1", "0 /1"] {
            assert_eq!(Lsn::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn finds_lsns_in_text() {
        let line = "requested starting point 0/52000000 is ahead of the WAL flush position of this server 0/45AD6088";
        assert_eq!(Lsn::after(line, "requested starting point "), Some(Lsn(0x5200_0000)));
        assert_eq!(Lsn::after(line, "flush position of this server "), Some(Lsn(0x45AD_6088)));
        assert_eq!(Lsn::after(line, "nothing here"), None);
        assert_eq!(
            Lsn::find_all(
                "error in WAL record at 0/3000028: invalid record length at 0/30000A0: wanted 24, got 0"
            ),
            vec![Lsn(0x300_0028), Lsn(0x300_00A0)]
        );
    }

    #[test]
    fn segments() {
        let seg = 16 * 1024 * 1024;
        let lsn = Lsn::parse("0/52345678").unwrap();
        assert_eq!(lsn.segment_start(seg), Lsn(0x5200_0000));
        assert_eq!(lsn.segment_no(seg), 0x52);
        assert_eq!(Lsn(0x5200_0000).segment_start(seg), Lsn(0x5200_0000));
        assert_eq!(lsn.segment_no(0), 0);
        assert_eq!(Lsn(0x84_DC60).segment_file_name(1, 1 << 20), "000000010000000000000008");
        assert_eq!(Lsn(0x1_0300_0000).segment_file_name(2, 16 << 20), "000000020000000100000003");
    }
}
