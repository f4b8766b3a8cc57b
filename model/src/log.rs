//! Server log lines produced while applying events.
//!
//! The model only records *what* a process reported; the sim crate adds
//! the timestamp and prints them PostgreSQL-style. Lines are built only
//! when logging is on, so a run without `--log` pays one branch per line.

use std::fmt;

use crate::ids::NodeId;

/// The process that wrote a line (`%b`, backend type).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Process {
    Postmaster,
    Backend(u8),
    Checkpointer,
    BgWriter,
    WalWriter,
    Startup,
    WalSender(NodeId),
    WalReceiver,
    /// An operator command run against the node (pg_ctl, pg_rewind, ...).
    Operator,
    /// The WAL archiver (pgarch.c).
    Archiver,
}

impl Process {
    /// The backend type as `log_line_prefix`'s `%b` prints it.
    pub fn backend_type(self) -> &'static str {
        match self {
            Process::Postmaster => "postmaster",
            Process::Backend(_) => "client backend",
            Process::Checkpointer => "checkpointer",
            Process::BgWriter => "background writer",
            Process::WalWriter => "walwriter",
            Process::Startup => "startup",
            Process::WalSender(_) => "walsender",
            Process::WalReceiver => "walreceiver",
            Process::Operator => "operator",
            Process::Archiver => "archiver",
        }
    }

    /// A stable pseudo-pid, so lines of one process can be told apart.
    pub fn pid(self, node: NodeId) -> u32 {
        let base = 1000 * (u32::from(node.0) + 1);
        base + match self {
            Process::Postmaster => 0,
            Process::Checkpointer => 1,
            Process::BgWriter => 2,
            Process::WalWriter => 3,
            Process::Startup => 4,
            Process::WalReceiver => 5,
            Process::Operator => 9,
            Process::Archiver => 6,
            Process::WalSender(i) => 10 + u32::from(i.0),
            Process::Backend(i) => 100 + u32::from(i),
        }
    }
}

/// Message severity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Level {
    Debug,
    Log,
    Detail,
    Error,
    Fatal,
    Panic,
    Warning,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Log => "LOG",
            Level::Detail => "DETAIL",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
            Level::Panic => "PANIC",
            Level::Warning => "WARNING",
        }
    }
}

/// One line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LogLine {
    pub node: NodeId,
    pub process: Process,
    pub level: Level,
    pub message: String,
}

/// Lines produced by the current step.
#[derive(Clone, Default, Debug)]
pub struct Log {
    enabled: bool,
    lines: Vec<LogLine>,
}

impl Log {
    pub fn new(enabled: bool) -> Log {
        Log { enabled, lines: Vec::new() }
    }

    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn push(&mut self, node: NodeId, process: Process, level: Level, message: fmt::Arguments<'_>) {
        if self.enabled {
            self.lines.push(LogLine { node, process, level, message: message.to_string() });
        }
    }

    /// Takes the lines of the step.
    pub fn drain(&mut self) -> std::vec::Drain<'_, LogLine> {
        self.lines.drain(..)
    }
}

/// `slog!(log, node, process, Level, "fmt", args...)`: formats only when
/// logging is enabled.
#[macro_export]
macro_rules! slog {
    ($log:expr, $node:expr, $proc:expr, $level:ident, $($arg:tt)+) => {
        if $log.enabled() {
            $log.push($node, $proc, $crate::log::Level::$level, format_args!($($arg)+));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of one process can be told apart: every process of every
    /// node has its own pid, and a node's pids share its thousand.
    #[test]
    fn pids_are_distinct_per_node_and_process() {
        let procs = [
            Process::Postmaster,
            Process::Backend(0),
            Process::Backend(3),
            Process::Checkpointer,
            Process::BgWriter,
            Process::WalWriter,
            Process::Startup,
            Process::WalSender(NodeId(1)),
            Process::WalSender(NodeId(2)),
            Process::WalReceiver,
            Process::Operator,
            Process::Archiver,
        ];
        let mut pids = std::collections::BTreeSet::new();
        for node in NodeId::all(3) {
            for p in procs {
                let pid = p.pid(node);
                assert_eq!(pid / 1000, u32::from(node.0) + 1, "{p:?} on {}", node.name());
                assert!(pids.insert(pid), "{p:?} on {} reuses {pid}", node.name());
            }
        }
        assert_eq!(Process::Startup.pid(NodeId(0)), 1004, "as in the golden logs' source lines");
    }

    /// Each level prints as PostgreSQL's elog level name.
    #[test]
    fn levels_print_as_postgres_names_them() {
        let all = [
            Level::Debug,
            Level::Log,
            Level::Detail,
            Level::Error,
            Level::Fatal,
            Level::Panic,
            Level::Warning,
        ];
        let names: Vec<_> = all.iter().map(|l| l.name()).collect();
        assert_eq!(names, ["DEBUG", "LOG", "DETAIL", "ERROR", "FATAL", "PANIC", "WARNING"]);
    }

    /// The pseudo-pids of node1: the postmaster at 1000, its auxiliary
    /// processes 1001–1009, the walsender serving the standby of id `i` at
    /// 1010 + i, client backend `b` at 1100 + b; node2's are 2000 on.
    #[test]
    fn pids_follow_the_fixed_layout() {
        let n = NodeId(0);
        let table = [
            (Process::Postmaster, 1000),
            (Process::Checkpointer, 1001),
            (Process::BgWriter, 1002),
            (Process::WalWriter, 1003),
            (Process::Startup, 1004),
            (Process::WalReceiver, 1005),
            (Process::Archiver, 1006),
            (Process::Operator, 1009),
            (Process::WalSender(NodeId(1)), 1011),
            (Process::WalSender(NodeId(2)), 1012),
            (Process::Backend(0), 1100),
            (Process::Backend(3), 1103),
        ];
        for (p, pid) in table {
            assert_eq!(p.pid(n), pid, "{p:?}");
        }
        assert_eq!(Process::Backend(2).pid(NodeId(1)), 2102);
        assert_eq!(Process::WalSender(NodeId(0)).pid(NodeId(2)), 3010);
    }

    /// `%b` as PostgreSQL prints each backend type (the operator's lines
    /// are walsim's own).
    #[test]
    fn backend_types_print_as_postgres_names_them() {
        let names: Vec<_> = [
            Process::Postmaster,
            Process::Backend(1),
            Process::Checkpointer,
            Process::BgWriter,
            Process::WalWriter,
            Process::Startup,
            Process::WalSender(NodeId(1)),
            Process::WalReceiver,
            Process::Operator,
            Process::Archiver,
        ]
        .iter()
        .map(|p| p.backend_type())
        .collect();
        assert_eq!(
            names,
            [
                "postmaster",
                "client backend",
                "checkpointer",
                "background writer",
                "walwriter",
                "startup",
                "walsender",
                "walreceiver",
                "operator",
                "archiver"
            ]
        );
    }

    /// A log keeps lines only when enabled; draining takes them, in order,
    /// and leaves it empty.
    #[test]
    fn a_log_keeps_lines_only_when_enabled() {
        let mut off = Log::new(false);
        assert!(!off.enabled());
        crate::slog!(off, NodeId(0), Process::Startup, Log, "redo starts at {}", 7);
        off.push(NodeId(0), Process::Startup, Level::Log, format_args!("x"));
        assert_eq!(off.drain().count(), 0);
        let mut on = Log::new(true);
        assert!(on.enabled());
        crate::slog!(on, NodeId(1), Process::Startup, Log, "redo starts at {}", 7);
        on.push(NodeId(0), Process::Checkpointer, Level::Debug, format_args!("y{}", 1));
        let lines: Vec<_> = on.drain().collect();
        assert_eq!(
            lines,
            [
                LogLine {
                    node: NodeId(1),
                    process: Process::Startup,
                    level: Level::Log,
                    message: "redo starts at 7".into()
                },
                LogLine {
                    node: NodeId(0),
                    process: Process::Checkpointer,
                    level: Level::Debug,
                    message: "y1".into()
                },
            ]
        );
        assert_eq!(on.drain().count(), 0, "drained");
    }
}
