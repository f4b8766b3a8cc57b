//! The buffer manager's read and write path (bufmgr.c `ReadBuffer`,
//! `FlushBuffer`; slru.c `SlruPhysicalWritePage` for CLOG pages): every
//! page written out obeys the WAL-before-data rule (xlog.c `XLogFlush` up
//! to the page LSN) and, under `synchronous_transfer`, waits for the
//! synchronous standby's flush first.

use crate::event::Wait;
use crate::ids::BlockNumber;
use crate::log::Process;
use crate::lsn::Lsn;
use crate::node::{Ctx, Node};
use crate::settings::FileKind;
use crate::slog;

impl Node {
    /// `FlushBuffer`: WAL up to the page LSN first (the WAL-before-data
    /// rule), then, under `synchronous_transfer`, the standby's flush, then
    /// the write to the OS cache. `Err` names what the caller waits for.
    pub fn flush_buffer(&mut self, f: usize, proc: Process, ctx: &mut Ctx<'_>) -> Result<(), Wait> {
        let frame = self.buffers.frame(f);
        let (blk, lsn) = (frame.tag.expect("flushing an empty buffer"), frame.page.lsn);
        self.wal_before_write(lsn, FileKind::Data, proc, ctx)?;
        let d = self.buffers.frame_mut(f);
        d.dirty = false;
        self.data.write_from(blk, &self.buffers.frame(f).page);
        slog!(ctx.log, self.id, proc, Debug, "wrote block {} of relation test (page LSN {})", blk, lsn);
        Ok(())
    }

    /// `ReadBuffer`: makes `blk` resident, writing out a dirty victim first
    /// if the clock sweep picks one. Returns the frame.
    pub fn read_buffer(&mut self, blk: BlockNumber, proc: Process, ctx: &mut Ctx<'_>) -> Result<usize, Wait> {
        if let Some(f) = self.buffers.lookup(blk) {
            self.buffers.touch(f);
            return Ok(f);
        }
        let victim = self.buffers.peek_victim();
        if self.buffers.frame(victim).dirty {
            self.flush_buffer(victim, proc, ctx)?;
        }
        // Flushing does not move the sweep (it only cleans the frame).
        let f = self.buffers.take_peeked_victim(victim);
        self.buffers.install_copy(f, blk, self.data.read(blk));
        Ok(f)
    }

    /// Writes one CLOG page under the same rules as a data page.
    pub fn write_clog_page(&mut self, p: BlockNumber, proc: Process, ctx: &mut Ctx<'_>) -> Result<(), Wait> {
        let lsn = self.clog.page(p).lsn;
        self.wal_before_write(lsn, FileKind::Clog, proc, ctx)?;
        self.clog.write_page(p);
        Ok(())
    }

    /// What must precede writing a page with LSN `lsn` out to a file of
    /// kind `what` (FlushBuffer, SlruPhysicalWritePage): with
    /// `synchronous_transfer` covering it, a synchronous standby must have
    /// flushed that far (else the writer waits); then, WAL-before-data,
    /// XLogFlush up to the page's LSN.
    fn wal_before_write(
        &mut self,
        lsn: Lsn,
        what: FileKind,
        proc: Process,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Wait> {
        if let Some(w) = self.transfer_wait(ctx.env, lsn, what) {
            return Err(Wait::Standby { lsn: w, what });
        }
        if ctx.env.settings.rules.wal_before_data {
            self.xlog_flush(lsn, ctx.log, proc);
        }
        Ok(())
    }
}
