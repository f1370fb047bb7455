//! What build.rs embedded from the op families' `.cu` files and the `kernels/` headers: the
//! sources, the kernel names and, where NVRTC was found at build time, one image (cubin or PTX)
//! per target with ptxas's register report.

/// One compiled image of all kernels.
#[derive(Clone, Copy, Debug)]
pub struct Image {
    /// The target: 70 (V100), 80 (A100), 90 (H100).
    pub sm: u32,
    /// A cubin for exactly that major version (else PTX, JIT-compiled by the driver).
    pub cubin: bool,
    pub bytes: &'static [u8],
    /// NVRTC's log: ptxas's registers, stack and spills per kernel (cubins only).
    pub ptxas_report: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// All kernel sources as one program (the order build.rs compiles them in), after the prelude.
pub fn combined_source() -> String {
    let files: String = KERNEL_SOURCES.iter().map(|(name, text)| format!("// ---- {name}\n{text}\n")).collect();
    format!("{KERNEL_PRELUDE}{files}")
}

/// The best embedded image for a GPU of compute capability `major.minor`: the newest cubin of
/// the same major version not above it, else PTX for a target not above it.
pub fn image_for(major: u32, minor: u32) -> Option<&'static Image> {
    let cc = major * 10 + minor;
    let cubin = IMAGES.iter().filter(|i| i.cubin && i.sm / 10 == major && i.sm <= cc).max_by_key(|i| i.sm);
    cubin.or_else(|| IMAGES.iter().filter(|i| !i.cubin && i.sm <= cc).max_by_key(|i| i.sm))
}

/// The PTX ISA version an embedded PTX image declares (`.version 8.8`).
pub fn ptx_version(image: &Image) -> Option<(u32, u32)> {
    let text = std::str::from_utf8(image.bytes).ok()?;
    let line = text.lines().find_map(|l| l.trim().strip_prefix(".version "))?;
    let (a, b) = line.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The oldest driver (CUDA version) that loads PTX of ISA `major.minor`: 7.x came with CUDA
/// 11.x, 8.0-8.5 with 12.0-12.5, 8.6 with 12.7, 8.7 with 12.8, 8.8 with 12.9, 9.0 with 13.0.
pub fn driver_for_ptx((major, minor): (u32, u32)) -> (u32, u32) {
    match (major, minor) {
        (7, m) => (11, m),
        (8, m) if m <= 5 => (12, m),
        (8, m) => (12, m + 1),
        (9, m) => (13, m),
        (m, _) => (m + 4, 0),
    }
}

/// Shared memory one block may use with the opt-in, per architecture (CUDA's table).
pub fn max_shared_for(sm: u32) -> u32 {
    let kb = match sm {
        70 | 72 => 96,
        75 => 64,
        80 | 87 => 163,
        86 | 89 | 120 | 121 => 99,
        90 | 100 | 101 | 103 | 110 => 227,
        _ => 48,
    };
    kb * 1024
}

/// The smallest per-block shared memory maximum among the embedded cubin targets (what the
/// emulated device allows, so a launch that one of them would refuse fails in CI).
pub fn smallest_max_shared() -> u32 {
    IMAGES.iter().filter(|i| i.cubin).map(|i| max_shared_for(i.sm)).min().unwrap_or(48 * 1024)
}

/// Per kernel, the most registers and static shared memory on any embedded target (ptxas's
/// reports), for the launch-time resource check under emulation.
pub fn worst_footprints() -> std::collections::HashMap<String, super::launch::KernelFootprint> {
    let mut out: std::collections::HashMap<String, super::launch::KernelFootprint> = Default::default();
    for image in IMAGES.iter().filter(|i| i.cubin) {
        for r in parse_ptxas_report(image.ptxas_report) {
            let f = out.entry(r.kernel).or_default();
            f.registers = f.registers.max(r.registers);
            f.static_shared = f.static_shared.max(r.shared_bytes);
        }
    }
    out
}

/// Registers, spills and static shared memory of one kernel on one target, read off a ptxas report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KernelResources {
    pub kernel: String,
    pub registers: u32,
    pub spill_bytes: u32,
    pub shared_bytes: u32,
}

/// Parses ptxas's `-v` output: "Function properties for NAME" is followed by a line with
/// "N bytes spill stores, M bytes spill loads", then "Used R registers".
pub fn parse_ptxas_report(report: &str) -> Vec<KernelResources> {
    let mut out: Vec<KernelResources> = Vec::new();
    for line in report.lines() {
        if let Some(at) = line.find("Function properties for ") {
            let name = line[at + "Function properties for ".len()..].trim().to_string();
            out.push(KernelResources { kernel: name, registers: 0, spill_bytes: 0, shared_bytes: 0 });
        } else if let Some(current) = out.last_mut() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for w in words.windows(3) {
                if w[1] == "bytes" && w[2] == "spill" {
                    current.spill_bytes += w[0].parse::<u32>().unwrap_or(0);
                }
                if w[1] == "bytes" && w[2].trim_end_matches(',') == "smem" {
                    current.shared_bytes = w[0].parse().unwrap_or(0);
                }
            }
            if let Some(at) = words.iter().position(|w| *w == "Used") {
                if words.get(at + 2).is_some_and(|w| w.starts_with("registers")) {
                    current.registers = words[at + 1].parse().unwrap_or(0);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptxas_report_is_parsed() {
        let report = "ptxas info    : Compiling entry function 'fear_zero' for 'sm_90'\n\
            ptxas info    : Function properties for fear_zero\n\
            \x20   0 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n\
            ptxas info    : Used 12 registers, used 1 barriers, 9216 bytes smem, 364 bytes cmem[0]\n";
        let want = KernelResources { kernel: "fear_zero".into(), registers: 12, spill_bytes: 12, shared_bytes: 9216 };
        assert_eq!(parse_ptxas_report(report), vec![want]);
    }

    #[test]
    fn ptx_versions_map_to_drivers() {
        assert_eq!(driver_for_ptx((8, 8)), (12, 9));
        assert_eq!(driver_for_ptx((8, 5)), (12, 5));
        assert_eq!(driver_for_ptx((7, 8)), (11, 8));
        assert_eq!(driver_for_ptx((9, 0)), (13, 0));
        for image in IMAGES.iter().filter(|i| !i.cubin) {
            assert!(ptx_version(image).is_some(), "the embedded PTX for compute_{} names its version", image.sm);
        }
    }

    #[test]
    fn every_kernel_name_is_found() {
        assert!(KERNEL_NAMES.contains(&"fear_conv_forward"));
        assert!(KERNEL_NAMES.contains(&"fear_augment"));
        assert!(KERNEL_NAMES.len() >= 25, "{KERNEL_NAMES:?}");
    }
}
