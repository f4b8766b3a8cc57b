//! The background writer (bgwriter.c, and bufmgr.c `BgBufferSync`, which it
//! calls): writes dirty buffers ahead of the clock sweep, one per event,
//! under the same rules as any buffer write (bufmgr.rs).

use crate::log::Process;
use crate::node::{Ctx, Env, Node};
use crate::settings::FileKind;

impl Node {
    /// The background writer writes the next dirty buffer the clock sweep
    /// would reach, if it need not wait.
    pub fn bgwriter_victim(&self, env: Env<'_>) -> Option<usize> {
        if !self.is_running() {
            return None;
        }
        let f = self.buffers.dirty_frames().next()?;
        let lsn = self.buffers.frame(f).page.lsn;
        self.transfer_wait(env, lsn, FileKind::Data).is_none().then_some(f)
    }

    /// `BgBufferSync` writing one buffer.
    pub fn bgwriter_step(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(f) = self.bgwriter_victim(ctx.env) {
            // Cannot wait: bgwriter_victim only offers writable buffers.
            let _ = self.flush_buffer(f, Process::BgWriter, ctx);
        }
    }
}
