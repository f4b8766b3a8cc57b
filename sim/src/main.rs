//! The `walsim` binary: a thin wrapper over [`walsim::cli::main_with`].

/// mimalloc instead of the system allocator: a run allocates WAL record
/// batches, page images and ledger entries on its hot path (malloc, free
/// and memmove were 12 % of `walsim explore`'s profile). The allocator
/// cannot change a trace: nothing in the model depends on addresses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // stderr is not held locked: explore's progress bar draws on it from
    // worker threads.
    let code = walsim::cli::main_with(args, &mut std::io::stdout().lock(), &mut std::io::stderr());
    std::process::exit(code);
}
