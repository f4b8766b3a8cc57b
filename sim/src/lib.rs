//! walsim: a deterministic simulator of PostgreSQL primary/standby WAL
//! replication.
//!
//! The [`walsim_model`] crate says which events are enabled and what each
//! does; this crate chooses (the seeded [`scheduler`]), runs
//! ([`run`]), reports ([`report`]) and offers the `walsim` command line
//! ([`cli`]).

pub mod args;
pub mod cli;
pub mod config;
pub mod report;
pub mod run;
pub mod scheduler;
pub mod swarm;
pub mod trace;

pub use walsim_model as model;
