//! WAL positions ("LSNs") as PostgreSQL prints them: `%X/%X`. The type
//! is the model's [`walsim_model::Lsn`] (which parses them from server
//! messages too); here only what the conformance reports add: segment
//! arithmetic on a bare segment size, and serializing as PostgreSQL prints
//! an LSN rather than as a number.

pub use walsim_model::Lsn;

/// Segment arithmetic with the segment size of a real server's
/// `wal_segment_size` (0 where unknown).
pub trait Segments {
    /// Start of the WAL segment that holds this position.
    fn segment_start(self, segment_size: u64) -> Lsn;
    /// Number of the WAL segment that holds this position (`XLByteToSeg`).
    fn segment_no(self, segment_size: u64) -> u64;
    /// Name of the WAL segment file holding this position on timeline `tli`
    /// (XLogFileName).
    fn segment_file_name(self, tli: u32, segment_size: u64) -> String;
}

impl Segments for Lsn {
    fn segment_start(self, segment_size: u64) -> Lsn {
        if segment_size == 0 {
            return self;
        }
        Lsn(self.0 - self.0 % segment_size)
    }

    fn segment_no(self, segment_size: u64) -> u64 {
        self.0.checked_div(segment_size).unwrap_or(0)
    }

    fn segment_file_name(self, tli: u32, segment_size: u64) -> String {
        let segno = self.segment_no(segment_size);
        let per_id = 0x1_0000_0000u64.checked_div(segment_size).unwrap_or(1).max(1);
        format!("{tli:08X}{:08X}{:08X}", segno / per_id, segno % per_id)
    }
}

/// `#[serde(serialize_with = "text")]`: an optional LSN as PostgreSQL
/// prints it (`%X/%X`), like the LSN strings in `Facts`.
pub fn text<S: serde::Serializer>(lsn: &Option<Lsn>, s: S) -> Result<S::Ok, S::Error> {
    match lsn {
        Some(l) => s.collect_str(l),
        None => s.serialize_none(),
    }
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
    fn serializes_as_postgres_prints_it() {
        #[derive(serde::Serialize)]
        struct P {
            #[serde(serialize_with = "text")]
            at: Option<Lsn>,
        }
        assert_eq!(serde_json::to_string(&P { at: Some(Lsn(0x300_0028)) }).unwrap(), r#"{"at":"0/3000028"}"#);
        assert_eq!(serde_json::to_string(&P { at: None }).unwrap(), r#"{"at":null}"#);
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
