//! The `walsim` binary: a thin wrapper over [`walsim::cli::main_with`].

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let code = walsim::cli::main_with(args, &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
    std::process::exit(code);
}
