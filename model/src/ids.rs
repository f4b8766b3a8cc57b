//! The identifiers every part of the model shares, in a leaf module that
//! imports nothing from the crate: a node's index, a timeline, a
//! transaction, a block. `NodeId` is a newtype (issue 12); the others are
//! still bare aliases.

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
pub type Tli = u32;

/// Transaction ID (`TransactionId`).
pub type Xid = u32;

/// Block number within the table (`BlockNumber`).
pub type BlockNumber = u32;
