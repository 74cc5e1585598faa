//! The `hycod` binary: the command line only (see [`hycod::cli`]).

use std::process::ExitCode;

mod memcpy_tuning;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    memcpy_tuning::apply();
    hycod::cli::main()
}
