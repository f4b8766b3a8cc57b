//! The identifiers every part of the model shares, in a leaf module that
//! imports nothing from the crate: a node's index, a timeline, a
//! transaction, a block. Each is a newtype (issue 12) that hashes,
//! serializes and prints as the number it wraps, so no trace changes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Node index within the cluster: 0 is `node1`, 1 is `node2`, …
///
/// Hashes, orders and serializes exactly as the `u8` it wraps (derived
/// `Hash` on a one-field struct feeds the field; `#[serde(transparent)]`),
/// and its `Debug` prints the bare number, so traces are unchanged.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u8);

impl NodeId {
    /// The node at position `i` of `Cluster::nodes`.
    pub fn from_index(i: usize) -> NodeId {
        NodeId(u8::try_from(i).expect("node index fits in u8"))
    }

    /// Position in `Cluster::nodes` and other per-node vectors.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// This node's bit in a `u16` node mask.
    pub fn bit(self) -> u16 {
        1u16 << self.0
    }

    /// The PostgreSQL-style name, `node1` for id 0.
    pub fn name(self) -> String {
        self.to_string()
    }

    /// Every node of a cluster of `n` nodes, in order.
    pub fn all(n: usize) -> impl Iterator<Item = NodeId> {
        (0..n).map(NodeId::from_index)
    }
}

/// `node1` for id 0, as the nodes' `name` and every log line spell it.
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", u32::from(self.0) + 1)
    }
}

/// The bare number, as `u8` prints it, so derived `Debug` output of the
/// events and states that hold a `NodeId` is what it was before.
impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Timeline ID (`TimeLineID`).
///
/// Like `NodeId`: hashes, orders, serializes and prints (`Display`,
/// `Debug`, `UpperHex`) exactly as the `u32` it wraps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tli(pub u32);

impl Tli {
    /// The timeline a promotion creates after this one.
    pub fn next(self) -> Tli {
        Tli(self.0 + 1)
    }
}

/// Transaction ID (`TransactionId`).
///
/// Like `NodeId`: hashes, orders, serializes and prints (`Display`,
/// `Debug`) exactly as the `u32` it wraps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Xid(pub u32);

impl Xid {
    /// `InvalidTransactionId`: no transaction (an `xmax` nobody set).
    pub const INVALID: Xid = Xid(0);
    /// `FirstNormalTransactionId`: the first an ordinary transaction gets.
    pub const FIRST_NORMAL: Xid = Xid(3);

    /// `TransactionIdIsValid`.
    pub fn is_valid(self) -> bool {
        self != Xid::INVALID
    }

    /// The ID assigned after this one (`TransactionIdAdvance`, without
    /// wraparound: a run never comes near 2^32 transactions).
    pub fn next(self) -> Xid {
        Xid(self.0 + 1)
    }

    /// Position in per-transaction tables (the CLOG, the WAL's commit
    /// bitmap).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Block number within a file (`BlockNumber`): a page of the table, or of
/// `pg_xact`.
///
/// Like `NodeId`: hashes, orders, serializes and prints (`Display`,
/// `Debug`) exactly as the `u32` it wraps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlockNumber(pub u32);

impl BlockNumber {
    /// The block at position `i` of a file.
    pub fn from_index(i: usize) -> BlockNumber {
        BlockNumber(u32::try_from(i).expect("block number fits in u32"))
    }

    /// Position in a file's vector of blocks.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Every block of a file of `n` blocks, in order.
    pub fn all(n: u32) -> impl Iterator<Item = BlockNumber> {
        (0..n).map(BlockNumber)
    }
}

/// `Display`, `Debug` (and any other `fmt` trait named) of a newtype,
/// printed as the number it wraps: the formatter's flags (width, `#`, …)
/// apply to the number.
macro_rules! fmt_as_number {
    ($ty:ty: $($tr:ident),+) => {
        $(impl fmt::$tr for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::$tr::fmt(&self.0, f)
            }
        })+
    };
}

fmt_as_number!(Tli: Display, Debug, UpperHex);
fmt_as_number!(Xid: Display, Debug);
fmt_as_number!(BlockNumber: Display, Debug);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    fn hash_of<T: Hash>(x: T) -> u64 {
        let mut h = DefaultHasher::new();
        x.hash(&mut h);
        h.finish()
    }

    /// Trace hashes and `Debug` output see the wrapped number, not the
    /// wrapper: the newtypes change no trace.
    #[test]
    fn newtypes_hash_and_print_as_their_number() {
        for n in [0u8, 1, 2, 15] {
            let id = NodeId(n);
            assert_eq!(hash_of(id), hash_of(n));
            assert_eq!(format!("{id:?}"), format!("{n:?}"));
            assert_eq!(id.to_string(), format!("node{}", u32::from(n) + 1));
            assert_eq!(id.name(), id.to_string());
            assert_eq!(NodeId::from_index(id.index()), id);
            assert_eq!(id.bit(), 1u16 << n);
        }
        assert_eq!(NodeId::all(3).map(NodeId::name).collect::<Vec<_>>(), ["node1", "node2", "node3"]);
        for t in [1u32, 2, 0xAB] {
            let tli = Tli(t);
            assert_eq!(hash_of(tli), hash_of(t));
            assert_eq!(format!("{tli} {tli:?} {tli:08X}"), format!("{t} {t:?} {t:08X}"));
            assert_eq!(tli.next(), Tli(t + 1));
        }
        for n in [0u32, 3, 64, 0xFFFF_FFFE] {
            let xid = Xid(n);
            assert_eq!(hash_of(xid), hash_of(n));
            assert_eq!(format!("{xid} {xid:?} {xid:>8}"), format!("{n} {n:?} {n:>8}"));
            assert_eq!(xid.next(), Xid(n + 1));
            assert_eq!(xid.index(), n as usize);
            assert_eq!(xid.is_valid(), n != 0);
            let blk = BlockNumber(n);
            assert_eq!(hash_of(blk), hash_of(n));
            assert_eq!(format!("{blk} {blk:?}"), format!("{n} {n:?}"));
            assert_eq!(BlockNumber::from_index(blk.index()), blk);
        }
        assert_eq!(BlockNumber::all(3).collect::<Vec<_>>(), [BlockNumber(0), BlockNumber(1), BlockNumber(2)]);
        // A vector of numbers hashes as one slice of bytes, a vector of
        // newtypes number by number: the trace hash (FNV-1a over bytes)
        // must see the same bytes either way (`Node::running`, the
        // unsynced block list).
        let stable = |x: &dyn Fn(&mut crate::cluster::StableHasher)| {
            let mut h = crate::cluster::StableHasher::default();
            x(&mut h);
            h.finish()
        };
        let raw = vec![3u32, 4, 0x1_0000, 7];
        let xids: Vec<Xid> = raw.iter().map(|&x| Xid(x)).collect();
        let blocks: Vec<BlockNumber> = raw.iter().map(|&b| BlockNumber(b)).collect();
        assert_eq!(stable(&|h| xids.hash(h)), stable(&|h| raw.hash(h)));
        assert_eq!(stable(&|h| blocks.hash(h)), stable(&|h| raw.hash(h)));
    }
}
