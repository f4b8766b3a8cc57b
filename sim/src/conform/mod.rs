//! Real-server side of the walsim conformance suite.
//!
//! Runs short, fully scripted stories against a real PostgreSQL primary/standby pair
//! on loopback and reports what the server did (an outcome class, the recognised
//! refusal messages, and the LSNs behind them), so that the simulator's predictions
//! can be compared with reality.
//!
//! Each story gets a fresh temp directory, fresh clusters and fresh ports; all of it
//! is torn down on success, error, panic and Ctrl-C (see [`install_interrupt_handler`]).
//!
//! The comparison with the model's predictions is in `crate::conformance`.

mod cluster;
mod install;
mod lsn;
mod mechanism;
mod messages;
mod outcome;
mod process;
mod stories;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

pub use self::install::{PgInstall, find_install};
pub use self::lsn::{Lsn, Segments};
pub use self::mechanism::{
    Mechanism, MechanismPositions, MechanismTrace, first_difference, mechanism_relations, recognise_mechanism,
};
pub use self::messages::{
    MessageKind, history_forked_at, recognise, recovery_point, removed_segment, requested_start,
    rewind_diverged_at, rewind_missing_at, server_flush,
};
pub use self::outcome::{Facts, OutcomeClass, RealOutcome, Story};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The error a run ends with after Ctrl-C / SIGTERM (find it with `downcast_ref`).
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Whether Ctrl-C or SIGTERM was received; every wait loop checks it, so a story
/// stops promptly and its Drop guards still stop the servers.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Turns Ctrl-C / SIGTERM into [`interrupted`] instead of killing the process, which
/// would leave servers running. A handler installed earlier (by us or the embedding
/// program) is left in place.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
}

/// `Err(Interrupted)` once Ctrl-C / SIGTERM arrived.
fn check_interrupted() -> Result<()> {
    if interrupted() { Err(anyhow::anyhow!(Interrupted)) } else { Ok(()) }
}

/// How to run stories.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Leave the temp directory (data directories and server logs) behind and say where.
    pub keep_data: bool,
    /// Print every command and its duration to stderr.
    pub verbose: bool,
}

/// Runs one story from scratch and reports what the real server did.
///
/// An `Err` means the harness could not carry the story out (a tool failed in an
/// unexpected way, a deadline passed while setting up, Ctrl-C); a refusal or a hang
/// that the story is about is an `Ok` outcome.
pub fn run_story(install: &PgInstall, story: Story, opts: &Options) -> Result<RealOutcome> {
    let sandbox = cluster::Sandbox::new(install, opts)?;
    let result = stories::run(&sandbox, install, story);
    let teardown = sandbox.teardown();
    match (result, teardown) {
        (Ok(outcome), Ok(())) => Ok(outcome),
        (Ok(_), Err(e)) => Err(e.context(format!("story {}", story.name()))),
        (Err(e), Ok(())) => Err(e.context(format!("story {} failed", story.name()))),
        (Err(e), Err(t)) => Err(e.context(format!("story {} failed (and {t:#})", story.name()))),
    }
}
