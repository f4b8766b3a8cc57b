//! The identifiers every part of the model shares, in a leaf module that
//! imports nothing from the crate: a node's index, a timeline, a
//! transaction, a block. `NodeId` and `Tli` are newtypes (issue 12); the
//! others are still bare aliases.

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

impl fmt::Display for Tli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Tli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::UpperHex for Tli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::UpperHex::fmt(&self.0, f)
    }
}

/// Transaction ID (`TransactionId`).
pub type Xid = u32;

/// Block number within the table (`BlockNumber`).
pub type BlockNumber = u32;

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
    }
}
