//! The identifiers every part of the model shares, in a leaf module that
//! imports nothing: a node's index, a timeline, a transaction, a block.
//! (Bare aliases for now; issue 12 would make them newtypes.)

/// Node index within the cluster.
pub type NodeId = u8;

/// Timeline ID (`TimeLineID`).
pub type Tli = u32;

/// Transaction ID (`TransactionId`).
pub type Xid = u32;

/// Block number within the table (`BlockNumber`).
pub type BlockNumber = u32;
