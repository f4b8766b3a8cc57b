//! The WAL writer (walwriter.c, and xlog.c `XLogBackgroundFlush`, which it
//! calls): writes and fsyncs WAL that backends inserted, in the background.

use crate::log::Process;
use crate::node::{Ctx, Node};
use crate::slog;

impl Node {
    /// Work for the WAL writer: WAL inserted but not written, or written
    /// but not flushed.
    pub fn walwriter_has_work(&self) -> bool {
        self.is_primary_or_shutting_down()
            && (self.wal.write_lsn() < self.wal.end() || self.wal.flush_lsn() < self.wal.write_lsn())
    }

    /// `XLogBackgroundFlush`: fsync what is written, else write what is
    /// inserted (two steps, so a crash can fall between them).
    pub fn walwriter_step(&mut self, ctx: &mut Ctx<'_>) {
        if self.wal.flush_lsn() < self.wal.write_lsn() {
            self.wal.flush_upto(self.wal.write_lsn());
            slog!(ctx.log, self.id, Process::WalWriter, Debug, "flushed WAL up to {}", self.wal.flush_lsn());
        } else {
            self.wal.write_upto(self.wal.end());
            slog!(ctx.log, self.id, Process::WalWriter, Debug, "wrote WAL up to {}", self.wal.write_lsn());
        }
    }
}
