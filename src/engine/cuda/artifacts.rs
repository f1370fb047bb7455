//! What build.rs embedded from `kernels/`: the sources, the kernel names and, where NVRTC was
//! found at build time, one image (cubin or PTX) per target with ptxas's register report.

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

/// All kernel sources as one program (the order build.rs compiles them in).
pub fn combined_source() -> String {
    KERNEL_SOURCES.iter().map(|(name, text)| format!("// ---- {name}\n{text}\n")).collect()
}

/// The best embedded image for a GPU of compute capability `major.minor`: the newest cubin of
/// the same major version not above it, else PTX for a target not above it.
pub fn image_for(major: u32, minor: u32) -> Option<&'static Image> {
    let cc = major * 10 + minor;
    let cubin = IMAGES.iter().filter(|i| i.cubin && i.sm / 10 == major && i.sm <= cc).max_by_key(|i| i.sm);
    cubin.or_else(|| IMAGES.iter().filter(|i| !i.cubin && i.sm <= cc).max_by_key(|i| i.sm))
}

/// Registers and spills of one kernel on one target, read off a ptxas report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KernelResources {
    pub kernel: String,
    pub registers: u32,
    pub spill_bytes: u32,
}

/// Parses ptxas's `-v` output: "Function properties for NAME" is followed by a line with
/// "N bytes spill stores, M bytes spill loads", then "Used R registers".
pub fn parse_ptxas_report(report: &str) -> Vec<KernelResources> {
    let mut out: Vec<KernelResources> = Vec::new();
    for line in report.lines() {
        if let Some(at) = line.find("Function properties for ") {
            let name = line[at + "Function properties for ".len()..].trim().to_string();
            out.push(KernelResources { kernel: name, registers: 0, spill_bytes: 0 });
        } else if let Some(current) = out.last_mut() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for w in words.windows(3) {
                if w[1] == "bytes" && w[2] == "spill" {
                    current.spill_bytes += w[0].parse::<u32>().unwrap_or(0);
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
            ptxas info    : Used 12 registers, used 0 barriers, 364 bytes cmem[0]\n";
        assert_eq!(parse_ptxas_report(report), vec![KernelResources { kernel: "fear_zero".into(), registers: 12, spill_bytes: 12 }]);
    }

    #[test]
    fn every_kernel_name_is_found() {
        assert!(KERNEL_NAMES.contains(&"fear_conv_forward"));
        assert!(KERNEL_NAMES.contains(&"fear_augment"));
        assert!(KERNEL_NAMES.len() >= 25, "{KERNEL_NAMES:?}");
    }
}
