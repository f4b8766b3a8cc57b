//! The `walsim` binary: a thin wrapper over [`walsim::cli::main_with`].

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // stderr is not held locked: explore's progress bar draws on it from
    // worker threads.
    let code = walsim::cli::main_with(args, &mut std::io::stdout().lock(), &mut std::io::stderr());
    std::process::exit(code);
}
