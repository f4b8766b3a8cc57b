//! Clients and what they were told (the ledger).
//!
//! Durability is judged against what a user saw: every acknowledged commit
//! is recorded with the nodes that held its commit record at that moment.
//! A session lost during COMMIT leaves its write in doubt: it may or may
//! not have happened, so either outcome is accepted.

use crate::event::{Ack, CommitRecord, Failure, Op, OpKind};
use crate::heap::{Row, md5_text};
use crate::ids::NodeId;
use crate::lsn::Lsn;
use crate::settings::WorkloadSettings;
use std::collections::BTreeMap;

/// The last acknowledged write of a key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AckedWrite {
    pub payload: u64,
    pub record: CommitRecord,
}

/// What clients know of one key.
#[derive(Clone, Default, Debug)]
pub struct KeyLedger {
    /// As stored: `written_on` may still hold nodes that lost power since
    /// (see [`Ledger::acked`], which applies those losses).
    acked: Option<AckedWrite>,
    /// Writes since the last acknowledged one whose commit record was
    /// written but whose client has not heard back (in flight, or lost with
    /// its session): any may be the row's value.
    pub in_doubt: Vec<u64>,
    /// Number of the acknowledgement `acked` came from (1 = the first).
    acked_seq: u64,
}

/// How a key's knowledge is compared and hashed: the acknowledged write
/// as it stands now (power losses applied), and the writes in doubt — the
/// fields `KeyLedger` had before power losses were applied lazily, in the
/// same order, so fingerprints are unchanged.
#[derive(PartialEq, Eq, Hash)]
struct KeyView<'a> {
    acked: Option<AckedWrite>,
    in_doubt: &'a Vec<u64>,
}

/// All clients' knowledge.
#[derive(Clone, Default, Debug)]
pub struct Ledger {
    keys: BTreeMap<u32, KeyLedger>,
    /// Per client: keys it inserted and may update (its own rows with no
    /// write in doubt).
    owned: Vec<Vec<u32>>,
    pub acks: u64,
    pub in_doubt_count: u64,
    pub failures: u64,
    /// Per node: acknowledgements numbered below this were made before the
    /// node's last power loss, so it no longer has them written (only
    /// flushed counts). Applied when read ([`Ledger::acked`]) instead of
    /// clearing a bit in every key at each power loss (O(keys) per power
    /// loss, issue 11).
    written_lost_before: [u64; 16],
}

impl Ledger {
    /// Key `k`'s acknowledged write as it stands: `written_on` without the
    /// nodes that lost power after it was acknowledged.
    fn acked(&self, k: &KeyLedger) -> Option<AckedWrite> {
        k.acked.map(|mut a| {
            let mut bits = a.record.written_on;
            while bits != 0 {
                let n = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if k.acked_seq < self.written_lost_before[n] {
                    a.record.written_on &= !(1 << n);
                }
            }
            a
        })
    }

    fn views(&self) -> impl Iterator<Item = (&u32, KeyView<'_>)> + '_ {
        self.keys.iter().map(|(key, k)| (key, KeyView { acked: self.acked(k), in_doubt: &k.in_doubt }))
    }
}

impl PartialEq for Ledger {
    fn eq(&self, other: &Self) -> bool {
        self.keys.len() == other.keys.len()
            && self.views().eq(other.views())
            && self.owned == other.owned
            && self.acks == other.acks
            && self.in_doubt_count == other.in_doubt_count
            && self.failures == other.failures
    }
}

impl Eq for Ledger {}

/// Hashes what the derived `Hash` of the eager ledger hashed (a
/// `BTreeMap`'s length, then each key and its [`KeyView`], then the
/// other fields in order): the same state, the same fingerprint.
impl std::hash::Hash for Ledger {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_usize(self.keys.len());
        for entry in self.views() {
            entry.hash(h);
        }
        self.owned.hash(h);
        self.acks.hash(h);
        self.in_doubt_count.hash(h);
        self.failures.hash(h);
    }
}

/// Splits a drawn argument into independent-looking bits (SplitMix64's
/// finaliser: a fixed, platform-independent mixing of a number). Also
/// numbers the sampled crash images (crash_image.rs).
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Ledger {
    pub fn new(clients: u8) -> Ledger {
        Ledger { owned: vec![Vec::new(); clients as usize], ..Ledger::default() }
    }

    /// The transaction client `client` runs next, from the scheduler's
    /// drawn argument: an insert of a random key, or an update of one of
    /// its own rows.
    pub fn make_op(&self, client: u8, arg: u64, w: &WorkloadSettings) -> Op {
        let owned = &self.owned[client as usize];
        let payload = mix(arg);
        let pick = arg >> 8;
        let roll = arg % 100;
        let updates = u64::from(w.update_percent);
        let (kind, key) = if roll < updates && !owned.is_empty() {
            (OpKind::Update, owned[(pick % owned.len() as u64) as usize])
        } else if (updates..updates + u64::from(w.select_percent)).contains(&roll) {
            (OpKind::Select, (pick % u64::from(w.key_space)) as u32 + 1)
        } else {
            (OpKind::Insert, (pick % u64::from(w.key_space)) as u32 + 1)
        };
        Op { client, kind, key, payload }
    }

    pub fn on_ack(&mut self, ack: &Ack) {
        self.acks += 1;
        let k = self.keys.entry(ack.op.key).or_default();
        k.acked = Some(AckedWrite { payload: ack.op.payload, record: ack.record });
        k.in_doubt.clear();
        k.acked_seq = self.acks;
        let owned = &mut self.owned[ack.op.client as usize];
        if ack.op.kind == OpKind::Insert && !owned.contains(&ack.op.key) {
            owned.push(ack.op.key);
        }
    }

    /// A commit record was inserted: until the client hears back, the write
    /// may be visible anywhere that WAL reached.
    pub fn on_commit_started(&mut self, op: &Op) {
        let k = self.keys.entry(op.key).or_default();
        if !k.in_doubt.contains(&op.payload) {
            k.in_doubt.push(op.payload);
        }
    }

    pub fn on_in_doubt(&mut self, client: u8, op: &Op) {
        self.in_doubt_count += 1;
        self.on_commit_started(op);
        self.owned[client as usize].retain(|&k| k != op.key);
    }

    pub fn on_failed(&mut self, client: u8, op: &Op, why: Failure) {
        self.failures += 1;
        if why == Failure::NoRow {
            self.owned[client as usize].retain(|&k| k != op.key);
        }
    }

    /// A node lost its OS cache: writes it only had written are gone.
    pub fn on_power_loss(&mut self, node: NodeId) {
        // Every acknowledgement so far (numbers 1..=acks) loses the node's
        // `written_on` bit; applied lazily by `Ledger::acked`.
        self.written_lost_before[node.index()] = self.acks + 1;
    }

    /// A node's data was replaced (rewind, base backup, truncation): what
    /// it held no longer counts as held.
    pub fn forget_node(&mut self, node: NodeId) {
        for k in self.keys.values_mut() {
            if let Some(a) = &mut k.acked {
                a.record.durable_on &= !node.bit();
                a.record.written_on &= !node.bit();
            }
        }
    }

    /// A node's WAL after `lsn` was replaced by another history: writes
    /// acknowledged with commit records past it no longer count as held
    /// there.
    pub fn forget_after(&mut self, node: NodeId, lsn: Lsn) {
        for k in self.keys.values_mut() {
            if let Some(a) = k.acked.as_mut().filter(|a| a.record.commit_end > lsn) {
                a.record.durable_on &= !node.bit();
                a.record.written_on &= !node.bit();
            }
        }
    }

    /// Checks that `rows` (node `node`'s visible rows) hold every
    /// acknowledged write the node held when it was acknowledged. Returns
    /// a sentence describing the first lost write.
    pub fn check_node(&self, node: NodeId, name: &str, rows: &[Row]) -> Option<String> {
        // `rows` is sorted (visible_rows sorts it): walk it alongside the
        // ledger's keys, in order, without building a map (a linear merge:
        // both sides only move forward).
        debug_assert!(rows.is_sorted());
        let mut at = 0;
        self.check_node_by_key(node, name, |key| {
            while at < rows.len() && rows[at].0 < key {
                at += 1;
            }
            let n = rows[at..].iter().take_while(|r| r.0 == key).count();
            (n, if n > 0 { rows[at + n - 1].1 } else { 0 })
        })
    }

    /// [`Ledger::check_node`] with the node's rows given per key: `seen(key)`
    /// is how many visible rows have that id and the payload of the last
    /// one (called with ascending keys).
    pub fn check_node_by_key(
        &self,
        node: NodeId,
        name: &str,
        mut seen: impl FnMut(u32) -> (usize, u64),
    ) -> Option<String> {
        let bit = node.bit();
        for (&key, k) in &self.keys {
            let Some(a) = self.acked(k) else { continue };
            if (a.record.durable_on | a.record.written_on) & bit == 0 {
                continue;
            }
            let (n, payload) = seen(key);
            let ok = n == 1 && (payload == a.payload || k.in_doubt.contains(&payload));
            if !ok {
                let how = if a.record.durable_on & bit != 0 { "flushed" } else { "written" };
                let found = match n {
                    0 => "no such row".to_string(),
                    1 => format!("info = '{}'", md5_text(payload)),
                    many => format!("{many} rows with that id"),
                };
                return Some(format!(
                    "acknowledged commit lost: row id={key} info='{}' was acknowledged by {} (commit record ending at {}, {how} on {name} at that moment), but {name} shows {found}",
                    md5_text(a.payload),
                    a.record.node,
                    a.record.commit_end,
                ));
            }
        }
        None
    }

    /// Number of keys with an acknowledged write.
    pub fn acked_keys(&self) -> usize {
        self.keys.values().filter(|k| k.acked.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::StableHasher;
    use crate::event::{Ack, Op, OpKind};
    use std::hash::{Hash, Hasher};

    /// The ledger as it was before power losses were applied lazily, with
    /// its derived `Hash` and the eager power loss.
    #[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
    struct EagerKey {
        acked: Option<AckedWrite>,
        in_doubt: Vec<u64>,
    }
    #[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
    struct Eager {
        keys: BTreeMap<u32, EagerKey>,
        owned: Vec<Vec<u32>>,
        acks: u64,
        in_doubt_count: u64,
        failures: u64,
    }

    fn fp(x: &impl Hash) -> u64 {
        let mut h = StableHasher::default();
        x.hash(&mut h);
        h.finish()
    }

    /// The lazy ledger equals, hashes and judges like the eager one.
    #[test]
    fn lazy_power_loss_matches_the_eager_ledger() {
        let mut lazy = Ledger::new(2);
        let mut eager = Eager { owned: vec![Vec::new(); 2], ..Eager::default() };
        let mut x = 7u64;
        for step in 0..2_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = ((x >> 33) % 50) as u32 + 1;
            if (x >> 20).is_multiple_of(9) {
                let node = NodeId(((x >> 40) % 3) as u8);
                lazy.on_power_loss(node);
                for k in eager.keys.values_mut() {
                    if let Some(a) = &mut k.acked {
                        a.record.written_on &= !node.bit();
                    }
                }
            } else {
                let op = Op { client: (step % 2) as u8, kind: OpKind::Insert, key, payload: x };
                let ack = Ack {
                    op,
                    record: CommitRecord {
                        node: NodeId(0),
                        commit_end: Lsn(step),
                        durable_on: ((x >> 50) & 7) as u16,
                        written_on: ((x >> 53) & 7) as u16,
                    },
                };
                lazy.on_ack(&ack);
                eager.acks += 1;
                let k = eager.keys.entry(key).or_default();
                k.acked = Some(AckedWrite { payload: op.payload, record: ack.record });
                k.in_doubt.clear();
                if !eager.owned[op.client as usize].contains(&key) {
                    eager.owned[op.client as usize].push(key);
                }
            }
            assert_eq!(fp(&lazy), fp(&eager), "step {step}");
            for node in 0..3 {
                let rows: Vec<Row> = (1..=50).filter(|k| k % 3 != node as u32).map(|k| (k, 0)).collect();
                let eager_verdict = {
                    let mut l = lazy.clone();
                    l.written_lost_before = [0; 16];
                    for (key, k) in &eager.keys {
                        l.keys.get_mut(key).unwrap().acked = k.acked;
                    }
                    l.check_node(NodeId(node), "n", &rows)
                };
                assert_eq!(lazy.check_node(NodeId(node), "n", &rows), eager_verdict, "step {step}");
            }
        }
        assert_eq!(lazy.clone(), lazy);
    }

    /// `mix` is SplitMix64's output function: its reference values (the
    /// first outputs of a SplitMix64 generator seeded with 0, and more).
    /// Which key and payload a drawn argument gives is part of every
    /// seed's history.
    #[test]
    fn mix_is_splitmix64() {
        assert_eq!(mix(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(mix(1), 0x910A_2DEC_8902_5CC1);
        assert_eq!(mix(12_345), 0x2211_8258_A9D1_11A0);
        let w = WorkloadSettings::default();
        assert_eq!(Ledger::new(1).make_op(0, 12_345, &w).payload, 0x2211_8258_A9D1_11A0);
    }

    fn ack(key: u32, payload: u64, commit_end: u64, on: u16) -> Ack {
        Ack {
            op: Op { client: 0, kind: OpKind::Insert, key, payload },
            record: CommitRecord {
                node: NodeId(0),
                commit_end: Lsn(commit_end),
                durable_on: on,
                written_on: on,
            },
        }
    }

    /// A node whose data was replaced (base backup, rewind) no longer owes
    /// the acknowledged commits it held: `check_node` does not ask it for
    /// them, and still asks every other node.
    #[test]
    fn a_forgotten_node_no_longer_owes_its_acknowledged_commits() {
        let mut l = Ledger::new(1);
        l.on_ack(&ack(1, 7, 100, 0b011));
        l.forget_node(NodeId(1));
        assert_eq!(l.check_node(NodeId(1), "node2", &[]), None);
        let lost = l.check_node(NodeId(0), "node1", &[]).unwrap();
        assert!(lost.contains("row id=1") && lost.contains("flushed on node1"), "{lost}");
        // Written only (not flushed) on node 3: forgotten as well.
        let mut l = Ledger::new(1);
        l.on_ack(&Ack {
            record: CommitRecord { durable_on: 0b001, written_on: 0b101, ..ack(1, 7, 100, 0).record },
            ..ack(1, 7, 100, 0)
        });
        l.forget_node(NodeId(2));
        assert_eq!(l.check_node(NodeId(2), "node3", &[]), None);
        assert!(l.check_node(NodeId(0), "node1", &[]).is_some());
    }

    /// `forget_after` drops only the commits whose record ends past the
    /// point, and only on that node.
    #[test]
    fn forget_after_drops_only_commits_past_the_point_on_that_node() {
        let mut l = Ledger::new(1);
        l.on_ack(&ack(1, 7, 100, 0b011));
        l.on_ack(&ack(2, 8, 200, 0b011));
        l.forget_after(NodeId(1), Lsn(100));
        let rows = [(1, 7), (2, 8)];
        assert_eq!(l.check_node(NodeId(1), "node2", &rows[..1]), None);
        let lost = l.check_node(NodeId(1), "node2", &rows[1..]).unwrap();
        assert!(lost.contains("row id=1"), "{lost}");
        let lost = l.check_node(NodeId(0), "node1", &rows[..1]).unwrap();
        assert!(lost.contains("row id=2"), "{lost}");
    }

    /// The drawn argument's last two decimal digits choose the kind
    /// (default mix: 20 % updates of an owned row, 10 % selects, the rest
    /// inserts); its bits above the eighth choose the key.
    #[test]
    fn make_op_chooses_kind_and_key_from_the_argument() {
        let w = WorkloadSettings { key_space: 100_000, ..WorkloadSettings::default() };
        let mut l = Ledger::new(1);
        let op = |l: &Ledger, arg: u64| {
            let o = l.make_op(0, arg, &w);
            (o.kind, o.key)
        };
        assert_eq!(op(&l, 1010), (OpKind::Insert, 4), "no owned row to update yet");
        assert_eq!(op(&l, 1025), (OpKind::Select, 5));
        assert_eq!(op(&l, 1050), (OpKind::Insert, 5));
        assert_eq!(op(&l, 1019), (OpKind::Insert, 4));
        l.on_ack(&ack(42, 7, 100, 1));
        assert_eq!(op(&l, 1010), (OpKind::Update, 42));
        assert_eq!(op(&l, 1019), (OpKind::Update, 42));
        assert_eq!(op(&l, 1020), (OpKind::Select, 4));
        assert_eq!(op(&l, 1029), (OpKind::Select, 5));
        assert_eq!(op(&l, 1030), (OpKind::Insert, 5));
        assert_eq!(op(&l, (99_999 << 8) + 50), (OpKind::Insert, 100_000));
        assert_eq!(op(&l, (100_000 << 8) + 50), (OpKind::Insert, 1));
    }

    fn op(client: u8, kind: OpKind, key: u32, payload: u64) -> Op {
        Op { client, kind, key, payload }
    }

    /// Ledgers are equal when every compared field is: a difference in
    /// any single one shows (the key count, a key's acknowledged write,
    /// the owned rows, and the three counters).
    #[test]
    fn ledgers_differ_in_any_single_field() {
        let base = || {
            let mut l = Ledger::new(2);
            l.on_ack(&ack(1, 7, 100, 0b01));
            l
        };
        assert_eq!(base(), base());
        let mut more_keys = base();
        more_keys.on_commit_started(&op(1, OpKind::Insert, 2, 9));
        let mut other_payload = Ledger::new(2);
        other_payload.on_ack(&ack(1, 8, 100, 0b01));
        let mut not_owned = Ledger::new(2);
        not_owned.on_ack(&Ack { op: op(0, OpKind::Update, 1, 7), ..ack(1, 7, 100, 0b01) });
        let mut acked_twice = base();
        acked_twice.on_ack(&ack(1, 7, 100, 0b01));
        let mut in_doubt = base();
        in_doubt.on_commit_started(&op(1, OpKind::Insert, 1, 3));
        let mut in_doubt_counted = in_doubt.clone();
        in_doubt_counted.on_in_doubt(1, &op(1, OpKind::Insert, 1, 3));
        let mut failed = base();
        failed.on_failed(1, &op(1, OpKind::Insert, 1, 4), Failure::DuplicateKey);
        let cases = [
            ("keys", &more_keys),
            ("acked write", &other_payload),
            ("owned", &not_owned),
            ("acks", &acked_twice),
            ("in doubt", &in_doubt),
            ("failures", &failed),
        ];
        for (what, other) in cases {
            assert_ne!(&base(), other, "{what}");
        }
        assert_ne!(in_doubt, in_doubt_counted, "in_doubt_count");
        // The same write in doubt twice is one possibility.
        let mut twice = in_doubt.clone();
        twice.on_commit_started(&op(1, OpKind::Insert, 1, 3));
        assert_eq!(twice, in_doubt);
        assert_eq!(twice.keys[&1].in_doubt, [3]);
        assert_eq!(fp(&twice), fp(&in_doubt));
        assert_ne!(fp(&base()), fp(&failed));
    }

    /// A client may update only rows it inserted and knows the fate of:
    /// an insert acknowledged adds the key (once), a write left in doubt
    /// or an UPDATE that found no row removes it; a duplicate-key failure
    /// does not. Counters count each outcome.
    #[test]
    fn owned_rows_follow_what_the_client_knows() {
        let mut l = Ledger::new(2);
        l.on_ack(&Ack { op: op(1, OpKind::Insert, 5, 1), ..ack(5, 1, 10, 1) });
        l.on_ack(&Ack { op: op(1, OpKind::Insert, 6, 1), ..ack(6, 1, 20, 1) });
        l.on_ack(&Ack { op: op(1, OpKind::Insert, 5, 2), ..ack(5, 2, 30, 1) });
        assert_eq!(l.owned[1], [5, 6]);
        assert!(l.owned[0].is_empty());
        assert_eq!((l.acks, l.acked_keys()), (3, 2));
        l.on_failed(1, &op(1, OpKind::Insert, 5, 3), Failure::DuplicateKey);
        assert_eq!(l.owned[1], [5, 6]);
        l.on_failed(1, &op(1, OpKind::Update, 5, 3), Failure::NoRow);
        assert_eq!(l.owned[1], [6]);
        assert_eq!(l.failures, 2);
        l.on_in_doubt(1, &op(1, OpKind::Update, 6, 4));
        assert!(l.owned[1].is_empty());
        assert_eq!(l.in_doubt_count, 1);
        assert_eq!(l.keys[&6].in_doubt, [4], "the write may have happened");
        // A key only ever in doubt has no acknowledged write.
        l.on_commit_started(&op(0, OpKind::Insert, 9, 1));
        assert_eq!(l.acked_keys(), 2);
        // The next acknowledgement of the key settles its doubt.
        l.on_ack(&ack(6, 5, 40, 1));
        assert!(l.keys[&6].in_doubt.is_empty());
    }

    /// `check_node` asks each node for the acknowledged writes it held
    /// (flushed or written), accepts a write in doubt instead, and says
    /// what it found: no row, another value, or several rows.
    #[test]
    fn check_node_names_what_the_node_shows() {
        let mut l = Ledger::new(1);
        l.on_ack(&Ack {
            record: CommitRecord { durable_on: 0b001, written_on: 0b011, ..ack(1, 7, 100, 0).record },
            ..ack(1, 7, 100, 0)
        });
        l.on_ack(&ack(2, 8, 200, 0b100));
        assert_eq!(l.check_node(NodeId(0), "node1", &[(1, 7)]), None);
        assert_eq!(l.check_node(NodeId(2), "node3", &[(2, 8)]), None, "only key 2 was held there");
        let msg = |found: &str, how: &str| {
            format!(
                "acknowledged commit lost: row id=1 info='{}' was acknowledged by node1 (commit record ending at 0/64, {how} on node2 at that moment), but node2 shows {found}",
                md5_text(7)
            )
        };
        assert_eq!(l.check_node(NodeId(1), "node2", &[]), Some(msg("no such row", "written")));
        assert_eq!(
            l.check_node(NodeId(1), "node2", &[(1, 9)]),
            Some(msg(&format!("info = '{}'", md5_text(9)), "written"))
        );
        assert_eq!(
            l.check_node(NodeId(1), "node2", &[(1, 7), (1, 7)]),
            Some(msg("2 rows with that id", "written"))
        );
        assert_eq!(l.check_node(NodeId(1), "node2", &[(0, 3), (1, 7), (2, 5)]), None);
        // A later write in doubt may be what the node shows.
        l.on_commit_started(&op(0, OpKind::Update, 1, 9));
        assert_eq!(l.check_node(NodeId(1), "node2", &[(1, 9)]), None);
        // Power loss on node2: only written there, no longer owed.
        l.on_power_loss(NodeId(1));
        assert_eq!(l.check_node(NodeId(1), "node2", &[]), None);
        assert!(l.check_node(NodeId(0), "node1", &[]).unwrap().contains("flushed on node1"));
    }
}
