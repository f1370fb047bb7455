//! Embeds the CUDA kernel sources of `kernels/` into the binary (`OUT_DIR/kernels.rs`), so a
//! GPU device can compile them at run time where no precompiled cubin fits.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut sources: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "cu")).collect())
        .unwrap_or_default();
    sources.sort();
    let mut out = String::from("/// (file name, CUDA source) of every kernel file, embedded by build.rs.\npub const KERNEL_SOURCES: &[(&str, &str)] = &[\n");
    for path in &sources {
        let name = path.file_name().unwrap().to_string_lossy();
        writeln!(out, "    ({name:?}, include_str!({:?})),", path.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("kernels.rs");
    std::fs::write(dest, out).unwrap();
}
