//! walsim-model: PostgreSQL's storage and replication rules as pure state
//! machines.
//!
//! The model never chooses: [`cluster::Cluster::enabled`] says which events
//! can happen, [`cluster::Cluster::apply`] applies one. No randomness, no
//! clock, no I/O, no threads, no hash-map iteration order: a run is a pure
//! function of the settings and the scheduler's choices.
//!
//! Modules are named after the PostgreSQL parts they stand for.

pub mod archive;
pub mod backend;
pub mod bgwriter;
pub mod buffer;
pub mod bufmgr;
pub mod checkpointer;
pub mod client;
pub mod clog;
pub mod cluster;
pub mod control;
pub mod crash_image;
pub mod event;
pub mod failback;
pub mod heap;
pub mod ids;
pub mod invariants;
pub mod log;
pub mod lsn;
pub mod marks;
pub mod network;
pub mod node;
pub mod operator;
pub mod pgarch;
pub mod recovery;
pub mod script;
pub mod settings;
pub mod storage;
pub mod syncrep;
pub mod timeline;
pub mod violation;
pub mod visibility;
pub mod wal;
pub mod walreceiver;
pub mod walsender;
pub mod walsndctl;
pub mod walwriter;
pub mod xlogarchive;

#[cfg(test)]
mod testkit;

pub use cluster::Cluster;
pub use event::{CrashKind, Event, EventKind};
pub use invariants::{Invariant, Violation};
pub use lsn::Lsn;
pub use settings::Settings;

#[cfg(test)]
mod tests_crash_image;
#[cfg(test)]
mod tests_failback;
#[cfg(test)]
mod tests_node;
#[cfg(test)]
mod tests_operator;
#[cfg(test)]
mod tests_pgarch;
#[cfg(test)]
mod tests_recovery;
#[cfg(test)]
mod tests_scenarios;
#[cfg(test)]
mod tests_script;
#[cfg(test)]
mod tests_walks;
#[cfg(test)]
mod tests_walwriter;
#[cfg(test)]
mod tests_xlogarchive;
