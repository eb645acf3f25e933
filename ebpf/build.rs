//! Makes a missing `bpf-linker` a clear error before rustc fails obscurely.
fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_CFG_BPF_TARGET_ARCH");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("bpf") && which::which("bpf-linker").is_err() {
        panic!(
            "bpf-linker not found in PATH: run `cargo xtask setup` (it builds bpf-linker 0.13.0 against LLVM 22)"
        );
    }
}
