//! walsim: a deterministic simulator of PostgreSQL primary/standby WAL
//! replication.
//!
//! The [`walsim_model`] crate says which events are enabled and what each
//! does; this crate chooses (the seeded [`scheduler`]), runs
//! ([`run`]), reports ([`report`]) and offers the `walsim` command line
//! ([`cli`]). At scale: [`explore`] sweeps seeds over a matrix of settings
//! (with [`swarm`] testing and shards, [`merge`]d afterwards), failures are
//! saved as [`trace`] files that [`replay`] exactly.

pub mod args;
pub mod bench;
pub mod cli;
pub mod config;
pub mod conform;
pub mod conformance;
pub mod explore;
pub mod input;
pub mod merge;
pub mod picture;
pub mod replay;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod scheduler;
pub mod shrink;
pub mod strategy;
pub mod swarm;
pub mod trace;
pub mod view;
pub mod window;

pub use walsim_model as model;
