//! The `hycod` binary: the command line only (see [`hycod::cli`]).

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    hycod::cli::main()
}
