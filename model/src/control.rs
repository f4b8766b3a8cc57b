//! The control file, `global/pg_control` (pg_control.h, xlog.c).
//!
//! UpdateControlFile writes and fsyncs it at once, and its 512-byte write is
//! atomic, so the model keeps a single image: what is on disk.

use crate::ids::Xid;
use crate::lsn::{Lsn, Tli};

/// `DBState`, printed as pg_controldata prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DbState {
    Startup,
    Shutdowned,
    ShutdownedInRecovery,
    Shutdowning,
    InCrashRecovery,
    InArchiveRecovery,
    InProduction,
}

impl DbState {
    /// pg_controldata's "Database cluster state".
    pub fn name(self) -> &'static str {
        match self {
            DbState::Startup => "starting up",
            DbState::Shutdowned => "shut down",
            DbState::ShutdownedInRecovery => "shut down in recovery",
            DbState::Shutdowning => "shutting down",
            DbState::InCrashRecovery => "in crash recovery",
            DbState::InArchiveRecovery => "in archive recovery",
            DbState::InProduction => "in production",
        }
    }

    /// Whether the last shutdown was clean (no recovery needed).
    pub fn is_clean_shutdown(self) -> bool {
        matches!(self, DbState::Shutdowned | DbState::ShutdownedInRecovery)
    }
}

/// `ControlFileData`, the fields walsim uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ControlFileData {
    pub system_identifier: u64,
    pub state: DbState,
    /// "Latest checkpoint location".
    pub checkpoint: Lsn,
    /// "Latest checkpoint's REDO location".
    pub redo: Lsn,
    /// "Latest checkpoint's TimeLineID".
    pub tli: Tli,
    /// "Latest checkpoint's PrevTimeLineID".
    pub prev_tli: Tli,
    /// "Latest checkpoint's NextXID".
    pub next_xid: Xid,
    /// "Minimum recovery ending location".
    pub min_recovery_point: Lsn,
    /// "Min recovery ending loc's timeline".
    pub min_recovery_point_tli: Tli,
    /// "Backup start location" (set by pg_rewind's backup label stand-in).
    pub backup_start: Lsn,
    /// "End-of-backup record required".
    pub backup_end_required: bool,
}
