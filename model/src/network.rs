//! Replication connections (libpqwalreceiver, the walsender's socket).
//!
//! One connection per standby: a FIFO queue each way. Delivering the next
//! message is an event, so messages interleave with everything else. A
//! dropped connection loses what is in flight; the walreceiver starts over
//! with START_REPLICATION.

use crate::ids::NodeId;
use crate::ids::Tli;
use crate::lsn::Lsn;
use crate::syncrep::ReportedPositions;
use crate::wal::Record;
use std::collections::VecDeque;

/// A message on a replication connection.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Msg {
    /// `XLogData`: WAL records, upstream → standby.
    WalData(Vec<Record>),
    /// Standby status update: write/flush/apply positions, standby →
    /// upstream.
    Reply(ReportedPositions),
}

/// A streaming connection from a walreceiver to its upstream's walsender.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Conn {
    pub upstream: NodeId,
    pub downstream: NodeId,
    /// Messages on their way to the standby.
    pub to_standby: VecDeque<Msg>,
    /// Messages on their way to the upstream.
    pub to_upstream: VecDeque<Msg>,
    /// Walsender: index in the upstream's WAL of the next record to send.
    pub cursor: usize,
    /// Walsender: `sentPtr`.
    pub sent: Lsn,
    /// Walreceiver: end of what it received on this connection (it starts
    /// at the start point): what its status updates may report.
    pub received: Lsn,
    /// The timeline streamed. When it is no longer the upstream's (the
    /// standby asked for an older one it cannot follow past, or the
    /// upstream was promoted), the walsender stops at its end and the
    /// connection ends there ("end of timeline"); the walreceiver then
    /// starts over, and the checks run again.
    pub tli: Tli,
}

impl Conn {
    pub fn new(upstream: NodeId, downstream: NodeId, cursor: usize, start: Lsn, tli: Tli) -> Conn {
        Conn {
            upstream,
            downstream,
            to_standby: VecDeque::new(),
            to_upstream: VecDeque::new(),
            cursor,
            sent: start,
            received: start,
            tli,
        }
    }

    /// Whether the connection joins `a` and `b` (either way).
    pub fn joins(&self, a: NodeId, b: NodeId) -> bool {
        (self.upstream == a && self.downstream == b) || (self.upstream == b && self.downstream == a)
    }

    pub fn touches(&self, n: NodeId) -> bool {
        self.upstream == n || self.downstream == n
    }
}

/// Pairs of nodes that cannot reach each other, in canonical order.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct Partitions(Vec<(NodeId, NodeId)>);

impl Partitions {
    fn key(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
        (a.min(b), a.max(b))
    }

    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        let k = Self::key(a, b);
        if !self.0.contains(&k) {
            self.0.push(k);
            self.0.sort_unstable();
        }
    }

    pub fn heal(&mut self, a: NodeId, b: NodeId) {
        let k = Self::key(a, b);
        self.0.retain(|&p| p != k);
    }

    pub fn heal_all(&mut self) {
        self.0.clear();
    }

    pub fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        self.0.contains(&Self::key(a, b))
    }

    pub fn pairs(&self) -> &[(NodeId, NodeId)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cuts are unordered pairs; `heal` mends one, `heal_all` (the start of
    /// the quiesce phase) every one.
    #[test]
    fn partitions_cut_heal_and_heal_all() {
        let (a, b, c) = (NodeId(0), NodeId(1), NodeId(2));
        let mut p = Partitions::default();
        p.cut(b, a);
        p.cut(a, b);
        p.cut(c, a);
        assert_eq!(p.pairs(), &[(a, b), (a, c)]);
        assert!(p.is_cut(a, b) && p.is_cut(b, a) && p.is_cut(a, c) && !p.is_cut(b, c));
        p.heal(b, a);
        assert!(!p.is_cut(a, b) && p.is_cut(a, c));
        p.cut(b, c);
        p.heal_all();
        assert!(p.pairs().is_empty());
        assert!(!p.is_cut(a, c) && !p.is_cut(b, c));
    }

    /// A connection joins its two ends, either way round, and touches
    /// each of them; no other pair or node.
    #[test]
    fn a_connection_joins_and_touches_only_its_two_ends() {
        let (a, b, c) = (NodeId(0), NodeId(1), NodeId(2));
        let x = Conn::new(a, b, 0, Lsn(0x28), Tli(1));
        assert!(x.joins(a, b) && x.joins(b, a));
        assert!(!x.joins(a, c) && !x.joins(c, a) && !x.joins(b, c) && !x.joins(c, b));
        assert!(!x.joins(a, a) && !x.joins(b, b));
        assert!(x.touches(a) && x.touches(b) && !x.touches(c));
        assert_eq!((x.sent, x.received, x.cursor), (Lsn(0x28), Lsn(0x28), 0));
    }
}
