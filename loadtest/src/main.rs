//! `hycod-load`: the bundled load generator. The generator itself is specified in its own issue;
//! until it lands this binary only reports its version, so the workspace layout is in place.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load generator for hycod (open-loop, coordinated-omission-corrected HDR histograms).
#[derive(Parser)]
#[command(version, about)]
struct Args {}

fn main() {
    Args::parse();
    println!(
        "hycod-load {} (hycod {})",
        env!("CARGO_PKG_VERSION"),
        hycod::VERSION
    );
}
