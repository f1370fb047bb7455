//! `fear doctor`: what this machine has for the engine (CUDA driver, GPUs, the kernels embedded
//! at build time with their registers and spills) and, on each device present (the host
//! emulation included), first one bare tensor-core tile of each kind its architecture has
//! against the CPU (a fragment-layout error shared by a kernel and the emulation shows only
//! there), then a self-test of every kernel against its CPU op. Exit status 1 when a check fails.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::engine::cuda::artifacts::{self, parse_ptxas_report, KernelResources};
use crate::engine::cuda::selftest::{self, OpCheck};
use crate::engine::cuda::{driver, Gpu};
use crate::engine::ops::mma::MmaKind;

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Seed of the self-test's random inputs.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Serialize, Debug)]
struct ImageReport {
    target: String,
    kind: &'static str,
    bytes: usize,
    /// For PTX: its ISA version and the oldest driver (CUDA version) that JIT-compiles it.
    ptx_isa: Option<String>,
    needs_driver: Option<String>,
    kernels: Vec<KernelResources>,
}

#[derive(Serialize, Debug)]
struct DeviceTest {
    device: String,
    passed: bool,
    /// The bare tensor-core tiles (`ops::mma`), checked first.
    mma_tiles: Vec<OpCheck>,
    /// The tile kinds the device's architecture lacks, each with the sm it needs.
    mma_not_run: Vec<String>,
    checks: Vec<OpCheck>,
}

#[derive(Serialize, Debug)]
struct Report {
    fear_version: &'static str,
    /// NVRTC used at build time, e.g. "12.9"; null when the sources were embedded uncompiled.
    nvrtc_at_build: Option<String>,
    build_note: &'static str,
    kernels: usize,
    images: Vec<ImageReport>,
    /// The CUDA driver's version, or why there is none.
    driver: std::result::Result<String, String>,
    gpus: Vec<std::result::Result<String, String>>,
    self_tests: Vec<DeviceTest>,
    passed: bool,
}

pub fn run(args: DoctorArgs) -> Result<()> {
    let images = artifacts::IMAGES
        .iter()
        .map(|i| ImageReport {
            target: if i.cubin { format!("sm_{}", i.sm) } else { format!("compute_{}", i.sm) },
            kind: if i.cubin { "cubin" } else { "ptx" },
            bytes: i.bytes.len(),
            ptx_isa: artifacts::ptx_version(i).filter(|_| !i.cubin).map(|(a, b)| format!("{a}.{b}")),
            needs_driver: artifacts::ptx_version(i).filter(|_| !i.cubin).map(artifacts::driver_for_ptx).map(|(a, b)| format!("CUDA {a}.{b}")),
            kernels: parse_ptxas_report(i.ptxas_report),
        })
        .collect();
    let count = driver::device_count();
    let driver = driver::driver_version().map(|(a, b)| format!("CUDA {a}.{b}")).map_err(|e| format!("{e:#}"));
    let mut devices: Vec<Gpu> = vec![Gpu::emulated()];
    let mut gpus = Vec::new();
    for i in 0..*count.as_ref().unwrap_or(&0) {
        match crate::run::device::open_gpu(i) {
            Ok(g) => {
                gpus.push(Ok(crate::engine::Device::<f32>::name(&g)));
                devices.push(g);
            }
            Err(e) => gpus.push(Err(format!("cuda:{i}: {e:#}"))),
        }
    }
    let self_tests: Vec<DeviceTest> = devices
        .iter()
        .map(|g| {
            let mma_tiles = selftest::mma_tiles(g, args.seed);
            let sm = g.backend().sm();
            let mma_not_run =
                MmaKind::ALL.iter().filter(|k| k.min_sm() > sm).map(|k| format!("{} (needs sm_{}; this is sm_{sm})", k.name(), k.min_sm())).collect();
            let checks = selftest::run(g, args.seed);
            let passed = mma_tiles.iter().chain(&checks).all(|c| c.passed);
            DeviceTest { device: crate::engine::Device::<f32>::name(g), passed, mma_tiles, mma_not_run, checks }
        })
        .collect();
    let passed = self_tests.iter().all(|t| t.passed) && gpus.iter().all(|g| g.is_ok());
    let report = Report {
        fear_version: env!("CARGO_PKG_VERSION"),
        nvrtc_at_build: artifacts::NVRTC_VERSION.map(|(a, b)| format!("{a}.{b}")),
        build_note: artifacts::BUILD_NOTE,
        kernels: artifacts::KERNEL_NAMES.len(),
        images,
        driver,
        gpus,
        self_tests,
        passed,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if !report.passed {
        std::process::exit(1);
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!("fear {}: {} CUDA kernels", r.fear_version, r.kernels);
    match &r.nvrtc_at_build {
        Some(v) => println!("built with NVRTC {v}: {}", r.images.iter().map(|i| format!("{} {}", i.target, i.kind)).collect::<Vec<_>>().join(", ")),
        None => println!("built without NVRTC: kernels compile at run time ({})", r.build_note),
    }
    if !r.build_note.is_empty() && r.nvrtc_at_build.is_some() {
        println!("  note: {}", r.build_note);
    }
    for image in r.images.iter().filter(|i| !i.kernels.is_empty()) {
        let max_regs = image.kernels.iter().map(|k| k.registers).max().unwrap_or(0);
        let spills: u32 = image.kernels.iter().map(|k| k.spill_bytes).sum();
        println!("  {}: most registers {max_regs} per thread, {spills} bytes spilled in all", image.target);
        for k in image.kernels.iter().filter(|k| k.spill_bytes > 0) {
            println!("    {} spills {} bytes", k.kernel, k.spill_bytes);
        }
    }
    match &r.driver {
        Ok(v) => println!("driver: {v}"),
        Err(e) => println!("driver: none ({e})"),
    }
    // The PTX is the fallback for GPUs no cubin fits: it loads only on a driver at least this new
    // (else the kernels are compiled at run time by NVRTC to a cubin).
    for image in r.images.iter().filter(|i| i.needs_driver.is_some()) {
        let isa = image.ptx_isa.as_deref().unwrap_or("?");
        let needs = image.needs_driver.as_deref().unwrap_or("?");
        let have = r.driver.as_deref().unwrap_or("no driver");
        println!("  {} PTX: ISA {isa}, needs a {needs} driver or newer (this machine: {have})", image.target);
    }
    if r.gpus.is_empty() {
        println!("GPUs: none; the CUDA kernels are checked through the host emulation only");
    }
    for g in &r.gpus {
        match g {
            Ok(name) => println!("GPU: {name}"), // the name says which kernel image it loaded
            Err(e) => println!("GPU: unusable: {e}"),
        }
    }
    for t in &r.self_tests {
        println!("tensor-core tiles on {}:", t.device);
        for c in &t.mma_tiles {
            let verdict = if c.passed { "pass".to_string() } else { format!("FAIL {}", c.error.clone().unwrap_or_default()) };
            println!("  {:<30} {verdict}  max relative error {:.1e} (< {:.0e})", c.op, c.max_rel_error, c.tolerance);
        }
        for k in &t.mma_not_run {
            println!("  not run: {k}");
        }
        let failed: Vec<&OpCheck> = t.checks.iter().filter(|c| !c.passed).collect();
        let worst = t.checks.iter().map(|c| c.max_rel_error).fold(0f64, f64::max);
        println!("self-test on {}: {} of {} ops pass (worst relative error {worst:.1e})", t.device, t.checks.len() - failed.len(), t.checks.len());
        for c in &t.checks {
            println!(
                "  {:<30} {:>9.1e}  (< {:.0e})  {}",
                c.op,
                c.max_rel_error,
                c.tolerance,
                if c.passed { "ok".to_string() } else { format!("FAILED {}", c.error.clone().unwrap_or_default()) }
            );
        }
    }
    println!("{}", if r.passed { "all checks passed" } else { "SOME CHECKS FAILED" });
    println!("{}", verdict(r));
}

/// The closing line: which devices this machine can run `fear` on.
fn verdict(r: &Report) -> String {
    let passed = |name: &str| r.self_tests.iter().any(|t| t.device == name && t.passed);
    let gpus: Vec<&str> = r.gpus.iter().filter_map(|g| g.as_ref().ok()).map(String::as_str).filter(|g| passed(g)).collect();
    let unusable = r.gpus.len() - gpus.len();
    let mut line = if gpus.is_empty() {
        "verdict: this machine runs fear on the CPU only (--device cpu; auto picks it)".to_string()
    } else {
        format!("verdict: this machine runs fear on the CPU and on {} GPU(s): {} (--device auto picks cuda:0)", gpus.len(), gpus.join(", "))
    };
    if unusable > 0 {
        line.push_str(&format!("; {unusable} GPU(s) found but unusable (see above)"));
    }
    line
}
