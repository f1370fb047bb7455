//! Every CUDA kernel against its CPU op, through the host emulation of `kernels/*.cu` and the
//! same launch code a GPU uses (no GPU needed); on a machine with a GPU (`FEAR_TEST_CUDA=1`),
//! against the real device too.

use fear::engine::cuda::{selftest, Gpu};

fn assert_all_pass(gpu: &Gpu) {
    let results = selftest::run(gpu, 7);
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    for r in &results {
        eprintln!("{:28} rel err {:.2e} (< {:.0e}) {}", r.op, r.max_rel_error, r.tolerance, r.error.as_deref().unwrap_or(""));
    }
    assert!(failed.is_empty(), "kernels failing against the CPU op: {failed:#?}");
    assert!(results.len() >= 30, "only {} checks ran", results.len());
}

#[test]
fn emulated_kernels_match_the_cpu_ops() {
    assert_all_pass(&Gpu::emulated());
}

#[test]
fn real_gpu_kernels_match_the_cpu_ops() {
    if std::env::var("FEAR_TEST_CUDA").as_deref() != Ok("1") {
        eprintln!("skipped: set FEAR_TEST_CUDA=1 on a machine with a GPU to check the real kernels");
        return;
    }
    assert_all_pass(&Gpu::cuda(0).expect("FEAR_TEST_CUDA=1 but no usable GPU"));
}

/// Whole steps of a small network (every op kind: convs, pools, skip, BN, the residual blocks,
/// the head, SGD with clipping), planned once and run by the CPU and by the emulated GPU: same
/// loss, hits and parameters; then the same for a frozen stage-2 step.
#[test]
fn training_steps_on_the_emulated_gpu_match_the_cpu() {
    use fear::engine::{Cpu, Device, PlanOptions, Session};
    use fear::net::{stage2_prefixes, tiny_network, NetConfig};
    use rand::{Rng, SeedableRng};

    let arch = fear::space::parse_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|").unwrap();
    let cfg = NetConfig { c: 4, n: 1, classes: 10, image_size: 16 };
    let batch = 5;
    let build = move |b| tiny_network(&arch, &cfg, b);
    let opts = PlanOptions { grad_clip: Some(0.5), ..PlanOptions::default() };
    let mut cpu: Session<f32, Cpu> = Session::new(Cpu, Box::new(build), batch, opts).unwrap();
    let mut gpu: Session<f32, Gpu> = Session::new(Gpu::emulated(), Box::new(build), batch, opts).unwrap();
    cpu.init_params(11).unwrap();
    gpu.init_params(11).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let images: Vec<f32> = (0..batch * 3 * 16 * 16).map(|_| rng.random_range(-2.0..2.0)).collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();

    let compare = |cpu: &Session<f32, Cpu>, gpu: &Session<f32, Gpu>, what: &str| {
        let (a, b) = (cpu.read_all_params().unwrap(), gpu.read_all_params().unwrap());
        let err = selftest::relative_error(&b, &a);
        assert!(err < 1e-4, "{what}: parameters differ by {err:e} (relative)");
    };
    for step in 0..3 {
        let (c, g) = (cpu.train_step(&images, &labels, 0.1).unwrap(), gpu.train_step(&images, &labels, 0.1).unwrap());
        assert!((c.loss - g.loss).abs() < 1e-4 * c.loss.abs().max(1.0), "step {step}: loss {} vs {}", c.loss, g.loss);
        assert_eq!(c.correct, g.correct, "step {step}: hits");
        compare(&cpu, &gpu, &format!("full step {step}"));
    }
    let keep = stage2_prefixes(&cfg, 0);
    cpu.train_only(&keep);
    gpu.train_only(&keep);
    let frozen_name = gpu.params().iter().find(|p| p.name.starts_with("cells.0.")).expect("cell 0 has parameters").name.clone();
    let frozen_before = gpu.read_param(&frozen_name).unwrap();
    for step in 0..2 {
        let (c, g) = (cpu.train_step(&images, &labels, 0.1).unwrap(), gpu.train_step(&images, &labels, 0.1).unwrap());
        assert!((c.loss - g.loss).abs() < 1e-4 * c.loss.abs().max(1.0), "frozen step {step}: loss {} vs {}", c.loss, g.loss);
        compare(&cpu, &gpu, &format!("frozen step {step}"));
    }
    assert_eq!(frozen_before, gpu.read_param(&frozen_name).unwrap(), "a frozen parameter ({frozen_name}) moved on the GPU");
    let (c, g) = (cpu.evaluate(&images, &labels).unwrap(), gpu.evaluate(&images, &labels).unwrap());
    assert!((c.loss - g.loss).abs() < 1e-4 * c.loss.abs().max(1.0), "eval loss {} vs {}", c.loss, g.loss);
    assert!(Device::<f32>::name(gpu.device()).starts_with("emulated"));
}

/// Two emulated-GPU sessions with the same seed and data train to the same bits, at every
/// `--precision` (the tensor-core kernels, 16-bit storage, loss scaling): the weight gradients'
/// per-split partials are summed in a fixed order and nothing uses atomics. Wider channels
/// (8/16/32) than the test above, so the convolutions take several channel groups, input chunks
/// and weight-gradient splits.
#[test]
fn training_steps_on_the_emulated_gpu_are_bit_identical_run_to_run() {
    use fear::engine::precision::Precision;
    use fear::engine::{PlanOptions, Session};
    use fear::net::{tiny_network, NetConfig};
    use rand::{Rng, SeedableRng};

    let arch = fear::space::parse_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|").unwrap();
    let cfg = NetConfig { c: 8, n: 1, classes: 10, image_size: 12 };
    let batch = 3;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let images: Vec<f32> = (0..batch * 3 * 12 * 12).map(|_| rng.random_range(-2.0..2.0)).collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let run = |precision| {
        let build = move |b| tiny_network(&arch, &cfg, b);
        let opts = PlanOptions::default().at_precision(precision).unwrap();
        let mut gpu: Session<f32, Gpu> = Session::new(Gpu::emulated(), Box::new(build), batch, opts).unwrap();
        gpu.init_params(3).unwrap();
        let losses: Vec<u64> = (0..2).map(|_| gpu.train_step(&images, &labels, 0.1).unwrap().loss.to_bits()).collect();
        (losses, gpu.read_all_params().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<u32>>())
    };
    for precision in [Precision::Fp32, Precision::Tf32, Precision::Bf16, Precision::F16] {
        let (first, second) = (run(precision), run(precision));
        assert_eq!(first.0, second.0, "{precision:?}: losses differ run to run");
        assert!(first.1 == second.1, "{precision:?}: parameters differ run to run");
    }
}

/// The GPU plan fuses each ReLU that feeds only a convolution into it (the forward and the weight
/// gradient read relu(x), the input gradient is masked by x), each node sum into one kernel
/// that applies the batch norms read only by it, and each such batch norm's statistics and
/// backward into its convolution: the same bits as the unfused plan on the emulated GPU, full and
/// frozen steps alike, with fewer kernels. (The statistics are merged from other partials, the
/// convolution's blocks instead of the batch norm's splits: in double, over this small batch, they
/// round to the same floats; on large batches they may differ in the last bit.)
#[test]
fn fused_steps_are_bit_identical_to_unfused_ones() {
    use fear::engine::{PlanOptions, Session};
    use fear::net::{stage2_prefixes, tiny_network, NetConfig};
    use rand::{Rng, SeedableRng};

    let arch = fear::space::parse_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|").unwrap();
    let cfg = NetConfig { c: 8, n: 1, classes: 10, image_size: 12 };
    let batch = 3;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let images: Vec<f32> = (0..batch * 3 * 12 * 12).map(|_| rng.random_range(-2.0..2.0)).collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let run = |fuse: bool| {
        let build = move |b| tiny_network(&arch, &cfg, b);
        let opts = PlanOptions { fuse, ..PlanOptions::default() };
        let mut gpu: Session<f32, Gpu> = Session::new(Gpu::emulated(), Box::new(build), batch, opts).unwrap();
        gpu.init_params(3).unwrap();
        let mut losses: Vec<u64> = (0..2).map(|_| gpu.train_step(&images, &labels, 0.1).unwrap().loss.to_bits()).collect();
        gpu.train_only(&stage2_prefixes(&cfg, 0));
        losses.push(gpu.train_step(&images, &labels, 0.1).unwrap().loss.to_bits());
        let p = gpu.program(batch, true).unwrap();
        let kernels = p.forward.len() + p.backward.len();
        (losses, gpu.read_all_params().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<u32>>(), kernels)
    };
    let (fused, unfused) = (run(true), run(false));
    assert_eq!(fused.0, unfused.0, "losses differ");
    assert!(fused.1 == unfused.1, "parameters differ");
    // 4 ReLU-conv pairs in the network's cell and reduction blocks (the stem has none), and the
    // batch norms of the cell's summed edges.
    assert!(fused.2 + 10 <= unfused.2, "{} kernels fused, {} unfused", fused.2, unfused.2);
}

/// With NVRTC at build time, every kernel has a cubin for sm_70, sm_80 and sm_90 plus PTX, and
/// none spills registers or has a stack frame. CI sets FEAR_REQUIRE_NVRTC=1 (build.rs then fails without NVRTC).
#[test]
fn every_kernel_is_compiled_for_every_target_without_spills() {
    use fear::engine::cuda::artifacts::{parse_ptxas_report, IMAGES, KERNEL_NAMES, NVRTC_VERSION};
    if NVRTC_VERSION.is_none() {
        assert_ne!(std::env::var("FEAR_REQUIRE_NVRTC").as_deref(), Ok("1"), "FEAR_REQUIRE_NVRTC=1 but the build embedded no NVRTC output");
        eprintln!("skipped: built without NVRTC (put libnvrtc on LD_LIBRARY_PATH; see .ci/run)");
        return;
    }
    for sm in [70, 80, 90] {
        let image = IMAGES.iter().find(|i| i.cubin && i.sm == sm).unwrap_or_else(|| panic!("no sm_{sm} cubin"));
        let kernels = parse_ptxas_report(image.ptxas_report);
        for name in KERNEL_NAMES {
            let k = kernels.iter().find(|k| k.kernel == *name).unwrap_or_else(|| panic!("{name} missing from the sm_{sm} report"));
            assert_eq!(k.spill_bytes, 0, "{name} spills on sm_{sm}");
            assert!(k.registers > 0, "{name}: no register count on sm_{sm}");
        }
        // No kernel keeps anything in local memory (an array indexed at run time, or a spill).
        for line in image.ptxas_report.lines().filter(|l| l.contains("bytes stack frame")) {
            assert!(line.trim_start_matches(|c: char| !c.is_ascii_digit()).starts_with("0 bytes stack frame"), "sm_{sm}: {line}");
        }
        // Every kernel is bounded to the block size its launch uses (kernels/launch_bounds.cuh).
        let bounded: Vec<&str> = fear::engine::cuda::launch::threads::KERNEL_THREADS.iter().map(|(n, _)| *n).collect();
        assert_eq!(bounded, KERNEL_NAMES, "a kernel without __launch_bounds__");
    }
    let ptx = IMAGES.iter().find(|i| !i.cubin).expect("no PTX for newer GPUs");
    let text = std::str::from_utf8(ptx.bytes).unwrap();
    assert!(KERNEL_NAMES.iter().all(|n| text.contains(&format!(".entry {n}("))), "PTX lacks a kernel");
}

/// `fear doctor` on a machine with no GPU says so and passes the emulated self-test.
#[test]
fn doctor_reports_the_machine_and_passes_the_emulated_self_test() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fear")).args(["doctor", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    assert!(out.status.success(), "doctor failed: {report:#}");
    let tests = report["self_tests"].as_array().unwrap();
    assert!(tests[0]["device"].as_str().unwrap().starts_with("emulated"));
    assert!(tests.iter().all(|t| t["passed"] == true));
    assert!(tests[0]["checks"].as_array().unwrap().len() >= 30);
    // The bare tensor-core tiles come first, every kind on the emulation (which claims sm_80).
    let tiles: Vec<&str> = tests[0]["mma_tiles"].as_array().unwrap().iter().map(|c| c["op"].as_str().unwrap()).collect();
    assert_eq!(tiles, ["mma_bf16_tile", "mma_tf32_tile", "mma_f16_tile", "mma_bf16_staged_tile"]);
    assert!(tests[0]["mma_tiles"].as_array().unwrap().iter().all(|c| c["passed"] == true));
    assert!(tests[0]["mma_not_run"].as_array().unwrap().is_empty());
    if report["gpus"].as_array().unwrap().is_empty() {
        assert!(report["driver"]["Err"].as_str().is_some_and(|e| e.contains("use --device cpu")), "{:#}", report["driver"]);
    }
}

/// A binary built without NVRTC, or a GPU no embedded image fits (a Blackwell GPU on a driver
/// older than the embedded PTX), compiles the embedded sources at run time to a cubin for the
/// GPU's own sm (through cudarc's NVRTC); checked wherever libnvrtc can be loaded (CI puts it
/// on LD_LIBRARY_PATH).
#[test]
fn the_embedded_sources_compile_with_nvrtc_at_run_time() {
    use fear::engine::cuda::{artifacts::KERNEL_NAMES, driver::compile_cubin_at_run_time};
    match compile_cubin_at_run_time(9, 0) {
        Ok(cubin) => {
            assert_eq!(&cubin[..4], b"\x7fELF", "a cubin is an ELF image");
            let text = String::from_utf8_lossy(&cubin);
            assert!(KERNEL_NAMES.iter().all(|n| text.contains(n)), "the run-time cubin lacks a kernel");
        }
        Err(e) => {
            assert_ne!(std::env::var("FEAR_REQUIRE_NVRTC").as_deref(), Ok("1"), "FEAR_REQUIRE_NVRTC=1 but: {e:#}");
            eprintln!("skipped: {e:#}");
        }
    }
}

/// One bare tensor-core tile of each kind (bf16 and tf32 m16n8k8, f16 m8n8k4, and the bf16 tile
/// staged through shared memory by cp.async and read by ldmatrix) held to the CPU on the
/// emulated GPU, which claims sm_80 and so runs every kind: what `fear doctor` checks first.
#[test]
fn emulated_mma_tiles_match_the_cpu() {
    let results = selftest::mma_tiles(&Gpu::emulated(), 7);
    for r in &results {
        eprintln!("{:28} rel err {:.2e} (< {:.0e}) {}", r.op, r.max_rel_error, r.tolerance, r.error.as_deref().unwrap_or(""));
    }
    let names: Vec<&str> = results.iter().map(|r| r.op.as_str()).collect();
    assert_eq!(names, ["mma_bf16_tile", "mma_tf32_tile", "mma_f16_tile", "mma_bf16_staged_tile"]);
    assert!(results.iter().all(|r| r.passed), "{results:#?}");
}

/// The staged tile on the emulated GPU, with and without its cp.async waits: the copies land only
/// at a wait, so without them the tile reads the shared memory's stale (NaN) bytes; with them it
/// is the CPU's product.
#[test]
fn a_missing_cp_async_wait_gives_a_wrong_result_in_emulation() {
    use fear::engine::ops::mma::{launch::launch_tile, mma_tile, MmaKind};
    use rand::{Rng, SeedableRng};

    let kind = MmaKind::Bf16Staged;
    let s = kind.shape();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut random = |n: usize| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    let (a, b, c) = (random(s.a_len()), random(s.b_len()), random(s.c_len()));
    let mut want = vec![0f32; s.c_len()];
    mma_tile(kind, &a, &b, &c, &mut want);
    let gpu = Gpu::emulated();
    let run = |wait: bool| {
        let buffers: Vec<_> = [&a, &b, &c, &want].iter().map(|v| gpu.buffer(v.len() * 4).unwrap()).collect();
        for (buf, v) in buffers.iter().zip([&a, &b, &c]) {
            buf.upload(bytemuck::cast_slice(v)).unwrap();
        }
        let at = [buffers[0].ptr(), buffers[1].ptr(), buffers[2].ptr(), buffers[3].ptr()];
        // SAFETY: each buffer holds its operand of the staged tile's shape.
        unsafe { launch_tile(gpu.backend(), kind, at, wait) }.unwrap();
        let mut d = vec![0f32; s.c_len()];
        gpu.backend().download(at[3], bytemuck::cast_slice_mut(&mut d)).unwrap();
        d
    };
    let err = selftest::relative_error(&run(true), &want);
    assert!(err < 1e-5, "with its waits the tile is off by {err:e}");
    let without = run(false);
    assert!(without.iter().any(|v| v.is_nan()), "without its waits the tile read landed copies: {without:?}");
}

/// A warp collective needs every lane of the warp: a block that is not whole warps (48 threads:
/// the second warp lacks 16 lanes) makes the emulated launch fail with a message, not hang.
#[test]
fn an_emulated_warp_collective_without_all_its_lanes_is_an_error() {
    use fear::engine::cuda::launch::{launch, Arg, Dims};
    let gpu = Gpu::emulated();
    // Room for the elements lanes 32-47 address too (the kernel indexes by threadIdx.x).
    let buf = gpu.buffer(4 * 4096).unwrap();
    let args = [Arg::Ptr(buf.ptr()), Arg::Ptr(buf.ptr()), Arg::Ptr(buf.ptr()), Arg::Ptr(buf.ptr())];
    let dims = Dims { grid: [1, 1, 1], block: [48, 1, 1] };
    // SAFETY: 48 threads of the tile touch fewer than 4096 floats.
    unsafe { launch(gpu.backend(), "fear_mma_bf16_tile", dims, &args) }.unwrap();
    let err = gpu.synchronize().unwrap_err().to_string();
    assert!(err.contains("whole warps"), "{err}");
}

/// The TF32, BF16 and FP16 forwards, input gradients and weight gradients really round: on the
/// emulated GPU (the tensor-core paths), each differs from the FP32 kernel by about its precision
/// (2^-11, 2^-8, 2^-11 per operand), and from the CPU face that rounds at the same points only by
/// the order of the f32 sums.
#[test]
fn the_tensor_core_convolutions_round_their_operands_as_the_cpu_face_does() {
    use fear::engine::ops::conv::{ConvGeom, ConvKernel};
    use fear::engine::precision::Precision;
    use fear::engine::{Cpu, Device, Kernel, Loc, MemoryLayout, Space};
    use rand::{Rng, SeedableRng};

    let gpu = Gpu::emulated();
    // (c_in, c_out, side, k, stride): every channel-group count (1, 2, 4, 8 groups of 8).
    for (c_in, c_out, side, k, stride) in
        [(20, 20, 9, 3, 1), (3, 8, 12, 3, 1), (8, 16, 12, 3, 2), (16, 16, 6, 1, 1), (16, 32, 6, 3, 2), (32, 32, 3, 3, 1), (9, 64, 5, 3, 1)]
    {
        let g = ConvGeom { n: 3, c_in, h: side, w: side, c_out, k, stride, pad: k / 2 };
        let (x, w) = (Loc::new(Space::Work, 0, g.x_len()), Loc::new(Space::Work, g.x_len(), g.w_len()));
        let y = Loc::new(Space::Work, w.end(), g.y_len());
        let (dx, dw) = (Loc::new(Space::Work, y.end(), g.x_len()), Loc::new(Space::Work, y.end() + g.x_len(), g.w_len()));
        let layout = MemoryLayout { params: 0, state: 0, work: dw.end(), half: 0, labels: 8 };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // dw starts at zero: the weight gradient adds into it.
        let init: Vec<f32> = (0..dw.end()).map(|i| if i < dw.offset { rng.random_range(-1.0f32..1.0) } else { 0.0 }).collect();
        let all = Loc::new(Space::Work, 0, dw.end());
        // Each product's kernel and its output: y, then dx (y as dy), then dw.
        // (what, its output, its kernel at a precision)
        type ByPrecision = Box<dyn Fn(Precision) -> Kernel>;
        let kernels: [(&str, Loc, ByPrecision); 3] = [
            ("forward", y, Box::new(move |precision| ConvKernel::Forward { g, x, x_norm: None, w, y, relu: true, bn: None, precision, sibling: None }.into())),
            (
                "input gradient",
                dx,
                Box::new(move |precision| {
                    ConvKernel::BackwardInput { g, dy: y, bn: None, w, mask: None, mask_norm: None, dx, accumulate: false, precision }.into()
                }),
            ),
            (
                "weight gradient",
                dw,
                Box::new(move |precision| ConvKernel::BackwardWeight { g, x, x_norm: None, dy: y, bn: None, dw, relu: true, precision }.into()),
            ),
        ];
        for (what, out, kernel) in &kernels {
            let on_cpu = |precision| {
                let mut m = <Cpu as Device<f32>>::alloc(&Cpu, &layout).unwrap();
                Cpu.write(&mut m, all, &init).unwrap();
                Cpu.launch(&mut m, &kernel(precision)).unwrap();
                Cpu.read(&m, *out).unwrap()
            };
            let on_gpu = |precision| {
                let mut m = gpu.alloc(&layout).unwrap();
                gpu.write(&mut m, all, &init).unwrap();
                gpu.launch(&mut m, &kernel(precision)).unwrap();
                gpu.read(&m, *out).unwrap()
            };
            let (cpu32, gpu32) = (on_cpu(Precision::Fp32), on_gpu(Precision::Fp32));
            // Each product's distance from FP32: about its operands' unit roundoff (TF32 and IEEE
            // half 2^-11, bfloat16 2^-8), a range apart.
            let products = [(Precision::Tf32, 5e-5..2e-3), (Precision::Bf16, 4e-4..2e-2), (Precision::F16, 5e-5..2e-3)];
            for (p, expected) in products {
                let (cpu_p, gpu_p) = (on_cpu(p), on_gpu(p));
                let (rounding, cpu_rounding) = (selftest::relative_error(&gpu_p, &gpu32), selftest::relative_error(&cpu_p, &cpu32));
                let order = selftest::relative_error(&gpu_p, &cpu_p);
                eprintln!(
                    "{g:?} {what}: {p:?} vs FP32 on the GPU {rounding:.2e}, on the CPU {cpu_rounding:.2e}; {p:?} GPU vs CPU {order:.2e}; FP32 GPU vs CPU {:.2e}",
                    selftest::relative_error(&gpu32, &cpu32)
                );
                assert!(expected.contains(&rounding), "{g:?} {what}: {p:?} against FP32: {rounding:e}, not {p:?}'s precision");
                assert!(expected.contains(&cpu_rounding), "{g:?} {what}: the CPU face does not round as {p:?} does");
                assert!(order < 1e-5, "{g:?} {what}: the {p:?} kernel and its CPU face differ by {order:e}: more than the order of the sums");
            }
        }
    }
}

/// Whole training steps at a reduced precision (`PlanOptions::at_precision`), planned fused on the
/// emulated GPU and unfused on the CPU, beside two CPU runs that size the comparison: the same
/// precision on images nudged up and down by `nudge` ulps of f32 (the spread rounding itself
/// gives: a step function, so trajectories part as far as a one-ulp change of input parts them;
/// two nudges, as one sample of that spread can fall short of another) and FP32 (how far the
/// precision moves the steps, to show it is live). Shared by the TF32 and BF16 tests, which
/// assert different things of the gaps.
struct PrecisionRuns {
    cpu: fear::engine::Session<f32, fear::engine::Cpu>,
    moved: [fear::engine::Session<f32, fear::engine::Cpu>; 2],
    fp32: fear::engine::Session<f32, fear::engine::Cpu>,
    gpu: fear::engine::Session<f32, Gpu>,
    images: Vec<f32>,
    nudged: [Vec<f32>; 2],
    labels: Vec<u32>,
}

/// One step of [`PrecisionRuns`]: the CPU's and GPU's losses and the nudged runs' larger gap from
/// the CPU's, and the parameters' relative gaps after it (GPU and the farther nudged run against
/// the CPU, FP32 against it).
struct StepGaps {
    loss: f64,
    gpu_loss: f64,
    moved_loss_gap: f64,
    err: f64,
    spread: f64,
    apart: f64,
}

impl PrecisionRuns {
    /// `arch` on TinyNetwork C = 8, N = 1, 12-pixel images, batch 3, gradient clip 0.5, at
    /// `--precision` `precision`; images and labels drawn from `data_seed`, parameters from
    /// `param_seed`.
    fn new(arch: &str, precision: fear::engine::precision::Precision, data_seed: u64, param_seed: u64, nudge: u32) -> PrecisionRuns {
        let opts = fear::engine::PlanOptions { grad_clip: Some(0.5), ..Default::default() }.at_precision(precision).unwrap();
        PrecisionRuns::planned(arch, opts, data_seed, param_seed, nudge)
    }

    /// [`PrecisionRuns::new`] with the runs' plan options `opts` (the FP32 companion's: the same
    /// at FP32 products and storage).
    fn planned(arch: &str, opts: fear::engine::PlanOptions, data_seed: u64, param_seed: u64, nudge: u32) -> PrecisionRuns {
        use fear::engine::precision::Precision;
        use fear::engine::{Cpu, Device, PlanOptions, Session};
        use fear::net::{tiny_network, NetConfig};
        use rand::{Rng, SeedableRng};

        let arch = fear::space::parse_arch(arch).unwrap();
        let cfg = NetConfig { c: 8, n: 1, classes: 10, image_size: 12 };
        let batch = 3;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(data_seed);
        let images: Vec<f32> = (0..batch * 3 * 12 * 12).map(|_| rng.random_range(-2.0..2.0)).collect();
        let nudged =
            [images.iter().map(|v| f32::from_bits(v.to_bits() + nudge)).collect(), images.iter().map(|v| f32::from_bits(v.to_bits() - nudge)).collect()];
        let labels = (0..batch).map(|_| rng.random_range(0..10)).collect();
        fn session<D: Device<f32>>(device: D, arch: fear::space::Arch, cfg: NetConfig, batch: usize, opts: PlanOptions, seed: u64) -> Session<f32, D> {
            let mut s = Session::new(device, Box::new(move |b| tiny_network(&arch, &cfg, b)), batch, opts).unwrap();
            s.init_params(seed).unwrap();
            s
        }
        let fp32 = PlanOptions { conv_precision: Precision::Fp32, storage: Precision::Fp32, ..opts };
        PrecisionRuns {
            cpu: session(Cpu, arch, cfg, batch, opts, param_seed),
            moved: [session(Cpu, arch, cfg, batch, opts, param_seed), session(Cpu, arch, cfg, batch, opts, param_seed)],
            fp32: session(Cpu, arch, cfg, batch, fp32, param_seed),
            gpu: session(Gpu::emulated(), arch, cfg, batch, opts, param_seed),
            images,
            nudged,
            labels,
        }
    }

    /// One training step (learning rate 0.1) of every run.
    fn step(&mut self, what: &str) -> StepGaps {
        let (c, g) = (self.cpu.train_step(&self.images, &self.labels, 0.1).unwrap(), self.gpu.train_step(&self.images, &self.labels, 0.1).unwrap());
        let moved_losses: Vec<f64> = self.moved.iter_mut().zip(&self.nudged).map(|(m, images)| m.train_step(images, &self.labels, 0.1).unwrap().loss).collect();
        self.fp32.train_step(&self.images, &self.labels, 0.1).unwrap();
        let want = self.cpu.read_all_params().unwrap();
        let gaps = StepGaps {
            loss: c.loss,
            gpu_loss: g.loss,
            moved_loss_gap: moved_losses.iter().map(|l| (l - c.loss).abs()).fold(0.0, f64::max),
            err: selftest::relative_error(&self.gpu.read_all_params().unwrap(), &want),
            spread: self.moved.iter().map(|m| selftest::relative_error(&m.read_all_params().unwrap(), &want)).fold(0.0, f64::max),
            apart: selftest::relative_error(&self.fp32.read_all_params().unwrap(), &want),
        };
        eprintln!(
            "{what}: loss {} vs {}; parameters: GPU vs CPU {:.2e}, nudged spread {:.2e}, against FP32 {:.2e}",
            gaps.loss, gaps.gpu_loss, gaps.err, gaps.spread, gaps.apart
        );
        gaps
    }

    /// Stage 2: every run trains only `keep`.
    fn train_only(&mut self, keep: &[String]) {
        let [up, down] = &mut self.moved;
        for s in [&mut self.cpu, up, down, &mut self.fp32] {
            s.train_only(keep);
        }
        self.gpu.train_only(keep);
    }
}

/// Whole training steps with TF32 convolution forwards (`PlanOptions::conv_precision`): the
/// emulated GPU (the tensor-core kernels) against the CPU, which rounds at the same points.
/// One step from the same parameters agrees within TF32's tolerance (1e-3; its loss, computed
/// before the update, within 1e-4). Later steps (loss and parameters) are held
/// to the spread TF32 itself gives: its rounding is a step function, so summation orders that
/// differ in the last bit (GPU against CPU) round some operands to neighbouring TF32 values, and
/// the trajectories part as far as a CPU run whose images moved by one ulp parts from the
/// unmoved one (measured: about 1e-3 of the parameters after two steps, while FP32 runs stay
/// within 1e-6 under the same nudge). The option is live: TF32 steps leave other parameters than
/// FP32 ones, and the GPU plan's convolution forwards are TF32.
#[test]
fn tf32_training_steps_on_the_emulated_gpu_match_the_cpu() {
    use fear::engine::ops::conv::ConvKernel;
    use fear::engine::precision::Precision;
    use fear::engine::Kernel;

    let arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|";
    let mut runs = PrecisionRuns::new(arch, Precision::Tf32, 6, 11, 1);
    product_steps_match_the_cpu(&mut runs, "TF32");
    let program = runs.gpu.program(3, true).unwrap();
    let tf32 = program.forward.iter().filter(|k| matches!(k, Kernel::Conv(ConvKernel::Forward { precision: Precision::Tf32, .. }))).count();
    assert!(tf32 >= 5, "{tf32} TF32 convolutions in the GPU step");
    // Both gradients of every convolution multiply in TF32 too (the two-gradient launches, and the
    // stem's weight gradient).
    let gradients = conv_gradient_launches(&program.backward);
    assert!(gradients.len() >= 5 && gradients.iter().all(|n| n.ends_with("_tf32")), "{gradients:?}");
}

/// Three full steps of `runs` (products rounded to `product`, f32 storage) held to the bounds of
/// the TF32 test's header: loss within 1e-4 and parameters within 1e-3 at the first step, then
/// within three times the spread of the nudged CPU runs (at least 1e-3); and the steps leave
/// FP32's by more than 1e-4.
fn product_steps_match_the_cpu(runs: &mut PrecisionRuns, product: &str) {
    for step in 0..3 {
        let s = runs.step(&format!("step {step}"));
        let loss_bound = if step == 0 { 1e-4 } else { 1e-3f64.max(3.0 * s.moved_loss_gap) } * s.loss.abs().max(1.0);
        assert!((s.loss - s.gpu_loss).abs() < loss_bound, "step {step}: loss {} vs {} (nudged runs up to {} apart)", s.loss, s.gpu_loss, s.moved_loss_gap);
        let bound = if step == 0 { 1e-3 } else { 1e-3f64.max(3.0 * s.spread) };
        assert!(s.err < bound, "step {step}: parameters differ by {:e} (relative; bound {bound:e})", s.err);
        assert!(s.apart > 1e-4, "step {step}: {product} steps left the parameters of FP32 ones ({:e} apart)", s.apart);
    }
}

/// The convolution gradients' kernels a backward launches (not their weight-gradient sums).
fn conv_gradient_launches(backward: &[fear::engine::Kernel]) -> Vec<&'static str> {
    use fear::engine::ops::conv::ConvKernel;
    use fear::engine::Kernel;
    let gradient = |k: &&Kernel| matches!(k, Kernel::Conv(ConvKernel::Backward { .. } | ConvKernel::BackwardInput { .. } | ConvKernel::BackwardWeight { .. }));
    backward.iter().filter(gradient).flat_map(Kernel::launch_names).filter(|n| *n != "fear_conv_backward_weight_reduce").collect()
}

/// Whole training steps with FP16 products (`PlanOptions::conv_precision` F16, f32 storage: the
/// convolutions' forwards and gradients on `mma.sync.m8n8k4.f16`, and the classifier's forward
/// and gradient products), held as the TF32 steps are: IEEE halves keep TF32's 10 mantissa bits,
/// so the same bounds. The GPU plan's convolutions are the FP16 ones.
#[test]
fn f16_product_training_steps_on_the_emulated_gpu_match_the_cpu() {
    use fear::engine::ops::conv::ConvKernel;
    use fear::engine::ops::linear::LinearKernel;
    use fear::engine::precision::Precision;
    use fear::engine::{Kernel, PlanOptions};

    let arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|";
    let opts = PlanOptions { grad_clip: Some(0.5), conv_precision: Precision::F16, ..PlanOptions::default() };
    let mut runs = PrecisionRuns::planned(arch, opts, 6, 11, 1);
    product_steps_match_the_cpu(&mut runs, "FP16");
    let program = runs.gpu.program(3, true).unwrap();
    let f16 = program.forward.iter().filter(|k| matches!(k, Kernel::Conv(ConvKernel::Forward { precision: Precision::F16, .. }))).count();
    assert!(f16 >= 5, "{f16} FP16 convolutions in the GPU step");
    let classifier = program.backward.iter().filter(|k| matches!(k, Kernel::Linear(LinearKernel::Backward { precision: Precision::F16, .. }))).count();
    assert_eq!(classifier, 1, "the classifier's gradients are FP16 products");
    // Both gradients of every convolution multiply in FP16 on the tensor cores.
    let gradients = conv_gradient_launches(&program.backward);
    assert!(gradients.len() >= 5 && gradients.iter().all(|n| n.ends_with("_f16mma")), "{gradients:?}");
}

/// Sibling convolutions (the two 3x3 edges leaving each cell's node 0 in arch 1) run as one wider
/// GEMM each way in the GPU plan: whole training steps, full and frozen, match the CPU's unfused
/// plan (1e-4 relative), and the plan holds sibling forwards and backwards in every cell (and
/// defers every weight-gradient sum but the last into the next backward's launch).
#[test]
fn sibling_convolutions_train_like_separate_ones_on_the_emulated_gpu() {
    use fear::engine::ops::conv::ConvKernel;
    use fear::engine::{Cpu, Kernel, PlanOptions, Session};
    use fear::net::{stage2_prefixes, tiny_network, NetConfig};
    use rand::{Rng, SeedableRng};

    let arch = fear::space::parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|").unwrap();
    let cfg = NetConfig { c: 8, n: 1, classes: 10, image_size: 12 };
    let batch = 3;
    let build = move |b| tiny_network(&arch, &cfg, b);
    let opts = PlanOptions { grad_clip: Some(0.5), ..PlanOptions::default() };
    let mut cpu: Session<f32, Cpu> = Session::new(Cpu, Box::new(build), batch, opts).unwrap();
    let mut gpu: Session<f32, Gpu> = Session::new(Gpu::emulated(), Box::new(build), batch, opts).unwrap();
    cpu.init_params(13).unwrap();
    gpu.init_params(13).unwrap();
    let program = gpu.program(batch, true).unwrap();
    let siblings = |ks: &[Kernel]| {
        let forward = ks.iter().filter(|k| matches!(k, Kernel::Conv(ConvKernel::Forward { sibling: Some(_), .. }))).count();
        let backward = ks.iter().filter(|k| matches!(k, Kernel::Conv(ConvKernel::Backward { sibling: Some(_), .. }))).count();
        (forward, backward)
    };
    // Three cells (N = 1), one pair each.
    assert_eq!(siblings(&program.forward), (3, 0), "sibling forwards in the GPU plan");
    assert_eq!(siblings(&program.backward), (0, 3), "sibling backwards in the GPU plan");
    assert_eq!(siblings(&cpu.program(batch, true).unwrap().forward), (0, 0), "the CPU plan is unfused");
    // Each backward's weight-gradient sum is deferred into the next backward's launch: one
    // standalone sum (the last) after the last backward, no reduce launch per convolution.
    let sums = program.backward.iter().filter(|k| matches!(k, Kernel::Conv(ConvKernel::WeightSum { .. }))).count();
    let two_gradient = |k: &&Kernel| matches!(k, Kernel::Conv(ConvKernel::Backward { .. }));
    let reduces = program.backward.iter().filter(two_gradient).flat_map(Kernel::launch_names).filter(|n| *n == "fear_conv_backward_weight_reduce").count();
    let last_backward = program.backward.iter().rposition(|k| two_gradient(&k));
    assert_eq!((sums, reduces), (1, 0), "standalone weight sums, and reduce launches of two-gradient backwards, in the GPU plan's backward");
    assert!(matches!(program.backward[last_backward.unwrap() + 1], Kernel::Conv(ConvKernel::WeightSum { .. })), "the last sum right after the last backward");

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let images: Vec<f32> = (0..batch * 3 * 12 * 12).map(|_| rng.random_range(-2.0..2.0)).collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let step = |cpu: &mut Session<f32, Cpu>, gpu: &mut Session<f32, Gpu>, what: &str| {
        let (c, g) = (cpu.train_step(&images, &labels, 0.1).unwrap(), gpu.train_step(&images, &labels, 0.1).unwrap());
        assert!((c.loss - g.loss).abs() < 1e-4 * c.loss.abs().max(1.0), "{what}: loss {} vs {}", c.loss, g.loss);
        assert_eq!(c.correct, g.correct, "{what}: hits");
        let err = selftest::relative_error(&gpu.read_all_params().unwrap(), &cpu.read_all_params().unwrap());
        assert!(err < 1e-4, "{what}: parameters differ by {err:e} (relative)");
    };
    for i in 0..3 {
        step(&mut cpu, &mut gpu, &format!("full step {i}"));
    }
    let keep = stage2_prefixes(&cfg, 0);
    cpu.train_only(&keep);
    gpu.train_only(&keep);
    for i in 0..2 {
        step(&mut cpu, &mut gpu, &format!("frozen step {i}"));
    }
}

/// A 16-bit `--precision` (`bf16` or `fp16`) over whole training steps: every activation and
/// activation gradient stored in 16 bits and every convolution's and the classifier's product
/// multiplied at that precision, planned fused on the emulated GPU and unfused on the CPU (which
/// rounds at every store): the same loss, hits and parameters within the precision's tolerance
/// (or three times the spread one ulp of input moves the CPU's own steps, as the TF32 test
/// bounds it), full and frozen; the tensors really are in the precision's space, every
/// convolution launches its tensor-core kernels on them (`fear_conv_forward{product}{storage}`
/// and the gradients' of that suffix), and the steps really leave FP32's. With dynamic loss
/// scaling (`fp16`), the step launches its kernels and the CPU and the GPU keep its state (scale,
/// skipped steps) alike after every step. `nudge`: one ulp of the stored input, in f32 ulps.
fn stored_precision_steps_match_the_cpu(precision: fear::engine::precision::Precision, nudge: u32) {
    use fear::engine::ops::conv::ConvKernel;
    use fear::engine::{Kernel, PlanOptions};
    use fear::net::{stage2_prefixes, NetConfig};

    // Every op kind the cells have: 3x3 and 1x1 convolutions (siblings at node 0), a pool, skips.
    let arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|";
    let mut runs = PrecisionRuns::new(arch, precision, 9, 17, nudge);

    let program = runs.gpu.program(3, true).unwrap();
    assert!(program.layout.half > 0, "a {precision:?} step stores tensors in 16 bits");
    let space = program.forward.iter().find_map(|k| if let Kernel::Conv(ConvKernel::Forward { y, .. }) = k { Some(y.space) } else { None }).unwrap();
    assert_eq!(space.storage(), precision, "the convolutions' outputs are stored at the precision");
    let convs: Vec<_> =
        program.forward.iter().filter_map(|k| if let Kernel::Conv(ConvKernel::Forward { x, y, .. }) = k { Some((*x, *y)) } else { None }).collect();
    assert!(convs.len() >= 5 && convs.iter().all(|(x, y)| x.space == space && y.space == space), "convolution tensors in {space:?}: {convs:?}");
    let suffix = format!("{}mma{}", space.kernel_suffix(), space.kernel_suffix());
    let gradients = conv_gradient_launches(&program.backward);
    assert!(gradients.len() >= 5 && gradients.iter().all(|n| n.ends_with(&suffix)), "{gradients:?}");
    let forwards: Vec<_> = program.forward.iter().filter(|k| matches!(k, Kernel::Conv(ConvKernel::Forward { .. }))).flat_map(Kernel::launch_names).collect();
    assert!(forwards.iter().filter(|n| n.starts_with("fear_conv_forward")).all(|n| *n == format!("fear_conv_forward{suffix}")), "{forwards:?}");
    let scaled = PlanOptions::default().at_precision(precision).unwrap().loss_scaling.is_some();
    let names: Vec<_> = program.backward.iter().chain(&program.update).flat_map(Kernel::launch_names).collect();
    assert_eq!(names.contains(&"fear_unscale_grads") && names.contains(&"fear_update_loss_scale"), scaled, "loss scaling's kernels: {names:?}");

    let tolerance = precision.tolerance();
    let check = |what: &str, first: bool, s: StepGaps, runs: &PrecisionRuns| {
        let bound = if first { tolerance } else { tolerance.max(3.0 * s.spread) };
        let loss_bound = if first { tolerance } else { tolerance.max(3.0 * s.moved_loss_gap) } * s.loss.abs().max(1.0);
        assert!((s.loss - s.gpu_loss).abs() < loss_bound, "{what}: loss {} vs {} (nudged runs up to {} apart)", s.loss, s.gpu_loss, s.moved_loss_gap);
        assert!(s.err < bound, "{what}: parameters differ by {:e} (relative; bound {bound:e})", s.err);
        assert!(s.apart > 1e-5, "{what}: {precision:?} steps left the parameters of FP32 ones only {:e} apart", s.apart);
        if scaled {
            let (c, g) = (runs.cpu.loss_scale().unwrap().unwrap(), runs.gpu.loss_scale().unwrap().unwrap());
            assert_eq!(c, g, "{what}: the loss-scaling states differ");
            eprintln!("{what}: loss scale {} ({} steps skipped)", c.scale, c.skipped);
        }
    };
    for i in 0..3 {
        let what = format!("full step {i}");
        let s = runs.step(&what);
        check(&what, i == 0, s, &runs);
    }
    runs.train_only(&stage2_prefixes(&NetConfig { c: 8, n: 1, classes: 10, image_size: 12 }, 0));
    for i in 0..2 {
        let what = format!("frozen step {i}");
        let s = runs.step(&what);
        check(&what, false, s, &runs);
    }
}

/// `--precision bf16` ([`stored_precision_steps_match_the_cpu`]): bfloat16 tensors in
/// `Space::Half`, BF16 products; the nudge is one bfloat16 ulp.
#[test]
fn bf16_storage_training_steps_on_the_emulated_gpu_match_the_cpu() {
    stored_precision_steps_match_the_cpu(fear::engine::precision::Precision::Bf16, 1 << 16);
}

/// `--precision fp16` ([`stored_precision_steps_match_the_cpu`]): IEEE-half tensors in
/// `Space::HalfF16`, FP16 products and dynamic loss scaling; the nudge is one IEEE-half ulp.
#[test]
fn fp16_storage_training_steps_on_the_emulated_gpu_match_the_cpu() {
    stored_precision_steps_match_the_cpu(fear::engine::precision::Precision::F16, 1 << 13);
}

/// Loss scaling's overflow path, on both devices: a scale that doubles after every finite step
/// (growth interval 1) soon overflows the IEEE-half gradients. The step that overflows is skipped,
/// exactly that one (the halved scale fits again; checked up to the step after the first
/// overflow): parameters and momentum keep their bits, the
/// scale halves, and the CPU and the emulated GPU skip the same steps with the same scales. Both
/// plan unfused: the fused plan rounds at other points (a node sum stores once, not after each
/// term), so at the edge of IEEE half's range a value may overflow in one plan and not the other.
#[test]
fn an_overflowing_fp16_step_is_skipped_alike_on_both_devices() {
    use fear::engine::loss_scale::LossScaling;
    use fear::engine::precision::Precision;
    use fear::engine::{Cpu, Device, PlanOptions, Session};
    use fear::net::{tiny_network, NetConfig};
    use rand::{Rng, SeedableRng};

    let arch = fear::space::parse_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|").unwrap();
    let cfg = NetConfig { c: 8, n: 1, classes: 10, image_size: 12 };
    let batch = 3;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let images: Vec<f32> = (0..batch * 3 * 12 * 12).map(|_| rng.random_range(-2.0..2.0)).collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let rules = LossScaling { initial: 16384.0, growth_interval: 1, ..LossScaling::default() };
    fn session<D: Device<f32>>(device: D, arch: fear::space::Arch, cfg: NetConfig, rules: LossScaling) -> Session<f32, D> {
        let opts = PlanOptions { loss_scaling: Some(rules), grad_clip: Some(0.5), fuse: false, ..PlanOptions::default().at_precision(Precision::F16).unwrap() };
        let mut s = Session::new(device, Box::new(move |b| tiny_network(&arch, &cfg, b)), 3, opts).unwrap();
        s.init_params(3).unwrap();
        s
    }
    let (mut cpu, mut gpu) = (session(Cpu, arch, cfg, rules), session(Gpu::emulated(), arch, cfg, rules));
    let mut skipped_steps = Vec::new();
    for step in 0..14 {
        let before = (cpu.read_all_params().unwrap(), cpu.read_all_momentum().unwrap(), gpu.read_all_params().unwrap(), gpu.read_all_momentum().unwrap());
        let scale = cpu.loss_scale().unwrap().map_or(rules.initial as f64, |s| s.scale);
        cpu.train_step(&images, &labels, 0.05).unwrap();
        gpu.train_step(&images, &labels, 0.05).unwrap();
        let (c, g) = (cpu.loss_scale().unwrap().unwrap(), gpu.loss_scale().unwrap().unwrap());
        assert_eq!(c, g, "step {step}: the devices' loss-scaling states differ");
        let after = (cpu.read_all_params().unwrap(), cpu.read_all_momentum().unwrap(), gpu.read_all_params().unwrap(), gpu.read_all_momentum().unwrap());
        if c.skips_in_a_row > 0 {
            skipped_steps.push(step);
            assert_eq!(c.skips_in_a_row, 1, "step {step}: a second skip in a row (scale {})", c.scale);
            assert_eq!(c.scale, scale / 2.0, "step {step}: a skipped step halves the scale");
            assert!(before == after, "step {step}: a skipped step changed parameters or momentum");
        } else {
            assert_eq!(c.scale, scale * 2.0, "step {step}: a finite step at growth interval 1 doubles the scale");
            assert!(before.0 != after.0 && before.2 != after.2, "step {step}: a finite step left the parameters");
            let err = selftest::relative_error(&after.2, &after.0);
            assert!(err < Precision::F16.tolerance(), "step {step}: parameters differ by {err:e}");
            // The step after the first skip fitted again: stop there, as the trajectories, a
            // rounding apart, would next meet the edge of the range at slightly different values.
            if !skipped_steps.is_empty() {
                break;
            }
        }
    }
    assert!(!skipped_steps.is_empty(), "no step overflowed from scale {} doubling 14 times", rules.initial);
    eprintln!("skipped steps: {skipped_steps:?}");
}
