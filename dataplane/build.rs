//! Builds the XDP object from `ebpf/` with the image's nightly toolchain
//! (aya-build), so that a plain `cargo build` produces it.
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf");
    aya_build::build_ebpf(
        [Package {
            name: "tandem-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        Toolchain::Nightly,
    )
}
