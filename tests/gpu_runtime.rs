//! The GPU runtime's rules, held on the emulated device (which keeps the driver's rules strictly):
//! stream ordering, one stream per session, sticky errors and how a run recovers from them,
//! FEAR_CUDA_SYNC, launch resource checks, 32-bit index ranges, several workers per GPU and
//! the profile's clock.

use std::sync::Mutex;

use fear::data::dataset::{Normalization, Split};
use fear::data::Dataset;
use fear::engine::cuda::launch::{check_resources, set_sync_every_launch, Dims, GpuAddresses, KernelFootprint};
use fear::engine::cuda::{launch, Gpu};
use fear::engine::ops::ElementwiseKernel;
use fear::engine::{AnyDevice, Device, Kernel, Loc, MemoryLayout, PlanOptions, Session, Space};
use fear::net::{tiny_network, NetConfig};
use fear::rank::results::ResultsFile;
use fear::run::Prepared;
use fear::space::Arch;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;

fn floats(gpu: &Gpu, ptr: u64, n: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; n * 4];
    gpu.backend().download(ptr, &mut bytes).unwrap();
    bytemuck::cast_slice(&bytes).to_vec()
}

/// Work queued on one stream has not happened for another stream until someone waits for it:
/// a memset queued on stream A, then ones written through stream B, then A reaches its memset:
/// the ones are gone. With the wait that the code must have (A synchronised before B uses the
/// memory), the ones stay. This is the bug class of R1 (memsets on one stream, kernels on
/// another), which the emulation used to hide by copying synchronously.
#[test]
fn strict_ordering_catches_a_missing_wait() {
    let a = Gpu::emulated();
    let b = a.new_stream().unwrap();
    let ones: Vec<u8> = bytemuck::cast_slice(&[1.0f32; 16]).to_vec();
    for wait in [false, true] {
        let p = a.backend().malloc(64).unwrap();
        // SAFETY: p holds 64 bytes.
        unsafe { a.backend().memset_async(p, 64).unwrap() };
        if wait {
            a.backend().synchronize().unwrap();
        }
        b.backend().upload(p, &ones).unwrap();
        a.backend().synchronize().unwrap();
        let got = floats(&b, p, 16);
        if wait {
            assert_eq!(got, [1.0; 16], "with the wait the upload lands last");
        } else {
            assert_eq!(got, [0.0; 16], "without the wait stream A's memset lands after stream B's upload");
        }
        // SAFETY: allocated above, not used again.
        unsafe { a.backend().free(p, 64) };
    }
}

/// The same for a kernel: queued on stream A, not waited for, its output is not there for a
/// read on stream B (fresh memory holds NaN until written); after A's wait it is.
#[test]
fn a_kernel_on_one_stream_is_not_seen_by_another_without_a_wait() {
    let a = Gpu::emulated();
    let b = a.new_stream().unwrap();
    let mut mem = a.alloc(&MemoryLayout { work: 16, labels: 1, ..MemoryLayout::default() }).unwrap();
    let (x, y) = (Loc::new(Space::Work, 0, 8), Loc::new(Space::Work, 8, 8));
    a.write(&mut mem, x, &[-1.0, 2.0, -3.0, 4.0, -5.0, 6.0, -7.0, 8.0]).unwrap();
    a.launch(&mut mem, &Kernel::Elementwise(ElementwiseKernel::Relu { x, y })).unwrap();
    let y_ptr = mem.address(y).unwrap();
    assert_eq!(floats(&b, y_ptr, 8), [0.0; 8], "stream A's kernel ran before anyone waited for it");
    a.synchronize().unwrap();
    assert_eq!(floats(&b, y_ptr, 8), [0.0, 2.0, 0.0, 4.0, 0.0, 6.0, 0.0, 8.0]);
}

/// Fresh device memory is not zero under emulation, and alloc_zeroed is (after its wait).
#[test]
fn fresh_memory_is_poisoned_and_alloc_zeroed_is_zero() {
    let gpu = Gpu::emulated();
    let raw = gpu.backend().malloc(16).unwrap();
    assert!(floats(&gpu, raw, 4).iter().all(|v| v.is_nan()));
    let zeroed = gpu.buffer(16).unwrap();
    assert_eq!(floats(&gpu, zeroed.ptr(), 4), [0.0; 4]);
    // SAFETY: allocated above.
    unsafe { gpu.backend().free(raw, 16) };
}

const CFG: NetConfig = NetConfig { c: 4, n: 1, classes: 10, image_size: 8 };

fn session(device: AnyDevice, arch: &Arch) -> Session<f32, AnyDevice> {
    let arch = *arch;
    let build = move |b| tiny_network(&arch, &CFG, b);
    let mut s = Session::new(device, Box::new(build), 4, PlanOptions { grad_clip: Some(5.0), ..PlanOptions::default() }).unwrap();
    s.init_params(3).unwrap();
    s
}

/// Two steps of a tiny network: (loss, correct) of each.
fn two_steps(device: &AnyDevice, arch: &Arch) -> anyhow::Result<Vec<(f64, usize)>> {
    let mut s = session(device.clone(), arch);
    s.set_capture(true);
    let mut rng = ChaCha8Rng::seed_from_u64(arch.index() as u64);
    let mut out = Vec::new();
    for _ in 0..2 {
        let x: Vec<f32> = (0..4 * 3 * 8 * 8).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<u32> = (0..4).map(|_| rng.random_range(0..10)).collect();
        let o = s.train_step(&x, &y, 0.1)?;
        out.push((o.loss, o.correct));
    }
    Ok(out)
}

/// Every session has its own stream and capture state: a capture in progress on one session's
/// stream neither records nor refuses another session's launches on the same GPU.
#[test]
fn sessions_on_one_gpu_have_their_own_streams() {
    let gpu = Gpu::emulated();
    let arch = Arch::from_index(1).unwrap();
    let alone = two_steps(&AnyDevice::Gpu(gpu.clone()), &arch).unwrap();
    let other = gpu.new_stream().unwrap();
    other.backend().begin_capture().unwrap();
    let beside = two_steps(&AnyDevice::Gpu(gpu.clone()), &arch).unwrap();
    let recorded = other.backend().end_capture().unwrap();
    assert_eq!(recorded.launches(), 0, "another session's launches went into this capture");
    assert_eq!(alone, beside);
}

/// A sticky error (an illegal address, injected) fails the call that waits for it, naming the
/// kernel, and then every call on every stream of the device, until it is reopened.
#[test]
fn a_sticky_error_poisons_the_device_until_reopened() {
    let gpu = Gpu::emulated_with_fault("fear_relu", 1);
    let other = gpu.new_stream().unwrap();
    let mut mem = gpu.alloc(&MemoryLayout { work: 16, labels: 1, ..MemoryLayout::default() }).unwrap();
    let (x, y) = (Loc::new(Space::Work, 0, 8), Loc::new(Space::Work, 8, 8));
    gpu.launch(&mut mem, &Kernel::Elementwise(ElementwiseKernel::Relu { x, y })).unwrap();
    gpu.synchronize().unwrap();
    gpu.launch(&mut mem, &Kernel::Elementwise(ElementwiseKernel::Relu { x, y })).unwrap();
    let err = gpu.synchronize().unwrap_err().to_string();
    assert!(err.contains("illegal memory access") && err.contains("fear_relu"), "{err}");
    assert!(gpu.is_poisoned() && other.is_poisoned());
    let later = other.buffer(16).map(drop).unwrap_err().to_string();
    assert!(later.contains("sticky"), "{later}");
    let fresh = gpu.reopen().unwrap();
    assert!(!fresh.is_poisoned());
    let mut mem = fresh.alloc(&MemoryLayout { work: 16, labels: 1, ..MemoryLayout::default() }).unwrap();
    fresh.write(&mut mem, x, &[1.0; 8]).unwrap();
    fresh.launch(&mut mem, &Kernel::Elementwise(ElementwiseKernel::Relu { x, y })).unwrap();
    assert_eq!(fresh.read(&mem, y).unwrap(), [1.0; 8]);
}

/// FEAR_CUDA_SYNC=1 (set here through its switch): the launch that faults reports it, by name.
#[test]
fn sync_every_launch_names_the_kernel_that_faulted() {
    let gpu = Gpu::emulated_with_fault("fear_add", 0);
    let mut mem = gpu.alloc(&MemoryLayout { work: 24, labels: 1, ..MemoryLayout::default() }).unwrap();
    let (a, b, y) = (Loc::new(Space::Work, 0, 8), Loc::new(Space::Work, 8, 8), Loc::new(Space::Work, 16, 8));
    set_sync_every_launch(true);
    gpu.launch(&mut mem, &Kernel::Elementwise(ElementwiseKernel::Relu { x: a, y: b })).unwrap();
    let err = format!("{:#}", gpu.launch(&mut mem, &Kernel::Elementwise(ElementwiseKernel::Add { a, b, y })).unwrap_err());
    set_sync_every_launch(false);
    assert!(err.contains("FEAR_CUDA_SYNC=1: fear_add faulted"), "{err}");
}

fn empty_dataset() -> Dataset {
    let empty = || Split { images: Vec::new(), labels: Vec::new() };
    Dataset { name: "none".into(), classes: 10, image_size: 8, train: empty(), test: empty(), norm: Normalization::CIFAR10, pad: 0 }
}

fn prepared(name: &str, devices: Vec<AnyDevice>, todo: &[Arch]) -> (Prepared, std::path::PathBuf) {
    let out = common::test_dir(name).join("results.jsonl");
    let p = Prepared { todo: todo.to_vec(), results: ResultsFile::open(&out).unwrap(), data: empty_dataset(), net: CFG, force: false, devices };
    (p, out)
}

fn lines(out: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn record(arch: &Arch, steps: Vec<(f64, usize)>) -> serde_json::Value {
    serde_json::json!({"index": arch.index(), "arch": arch.to_string(), "status": "ok", "score": steps[1].0, "steps": steps, "time_s": 0.0})
}

/// A sticky error in one architecture's step: that architecture gets its `failed` line naming
/// the kernel, the worker reopens the device, and every later architecture trains normally
/// (no cascade of failures on healthy architectures).
#[test]
fn a_worker_reopens_its_device_after_a_sticky_error() {
    let todo: Vec<Arch> = (0..4).map(|i| Arch::from_index(i * 1000 + 7).unwrap()).collect();
    // Each architecture's two steps launch fear_sgd a few times; the 5th run is in the 2nd or 3rd.
    let gpu = Gpu::emulated_with_fault("fear_sgd", 4);
    let (p, out) = prepared("sticky-reopen", vec![AnyDevice::Gpu(gpu)], &todo);
    p.run_all(&serde_json::json!({}), &[], |arch, _, _, device, _| Ok(record(arch, two_steps(device, arch)?))).unwrap();
    let lines = lines(&out);
    assert_eq!(lines.len(), todo.len());
    let failed: Vec<&serde_json::Value> = lines.iter().filter(|l| l["status"] != "ok").collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    let why = failed[0].to_string();
    assert!(why.contains("fear_sgd") && why.contains("illegal memory access"), "{why}");
}

/// With several workers on the poisoned device, reopening it would pull the context from under
/// the others: the run stops, the faulting architecture alone is recorded as failed, and the
/// message says a rerun resumes.
#[test]
fn a_shared_device_with_a_sticky_error_stops_the_run_for_a_rerun() {
    let todo: Vec<Arch> = (0..6).map(|i| Arch::from_index(i * 900 + 3).unwrap()).collect();
    let gpu = AnyDevice::Gpu(Gpu::emulated_with_fault("fear_sgd", 4));
    let (p, out) = prepared("sticky-shared", vec![gpu.clone(), gpu], &todo);
    let err = p.run_all(&serde_json::json!({}), &[], |arch, _, _, device, _| Ok(record(arch, two_steps(device, arch)?))).unwrap_err();
    assert!(err.to_string().contains("rerun the same command to resume"), "{err}");
    let lines = lines(&out);
    assert_eq!(lines.iter().filter(|l| l["status"] != "ok").count(), 1, "{lines:?}");
    assert!(lines.len() < todo.len());
}

/// `--jobs K`: K workers on one (emulated) GPU, each session on its own stream, give exactly the
/// results of one worker.
#[test]
fn several_workers_on_one_gpu_give_the_results_of_one() {
    let todo: Vec<Arch> = (0..6).map(|i| Arch::from_index(i * 2500 + 11).unwrap()).collect();
    let run = |jobs: usize| {
        let gpu = AnyDevice::Gpu(Gpu::emulated());
        let threads = Mutex::new(std::collections::HashSet::new());
        let (p, out) = prepared(&format!("jobs-{jobs}"), vec![gpu; jobs], &todo);
        p.run_all(&serde_json::json!({}), &[], |arch, _, _, device, _| {
            threads.lock().unwrap().insert(std::thread::current().id());
            Ok(record(arch, two_steps(device, arch)?))
        })
        .unwrap();
        let mut l: Vec<(u64, String)> = lines(&out).iter().map(|v| (v["index"].as_u64().unwrap(), v["steps"].to_string())).collect();
        l.sort();
        (l, threads.into_inner().unwrap().len())
    };
    let (one, _) = run(1);
    let (three, workers) = run(3);
    assert_eq!(one.len(), todo.len());
    assert_eq!(one, three);
    assert!(workers > 1, "one worker did everything");
}

/// The hardware's launch limits, checked before launching on every backend.
#[test]
fn launch_resources_are_checked() {
    let dims = |threads| Dims { grid: [1, 1, 1], block: [threads, 1, 1] };
    let light = KernelFootprint { registers: 32, static_shared: 1024 };
    let max = 96 * 1024;
    check_resources("k", dims(1024), 0, light, 0, max).unwrap();
    assert!(check_resources("k", dims(1025), 0, light, 0, max).is_err(), "1025 threads");
    let heavy = KernelFootprint { registers: 72, static_shared: 0 };
    let err = check_resources("k", dims(1024), 0, heavy, 0, max).unwrap_err().to_string();
    assert!(err.contains("registers"), "{err}");
    check_resources("k", dims(896), 0, heavy, 0, max).unwrap();
    check_resources("k", dims(256), 47 * 1024, light, 0, max).unwrap();
    let err = check_resources("k", dims(256), 48 * 1024, light, 0, max).unwrap_err().to_string();
    assert!(err.contains("opts in"), "{err}");
    check_resources("k", dims(256), 64 * 1024, light, 64 * 1024, max).unwrap();
    assert!(check_resources("k", dims(256), 95 * 1024 + 1, light, 95 * 1024 + 1, max).is_err(), "above the device's maximum");
}

/// Dynamic shared memory through the launch path: refused above 48 KB until the kernel opts in
/// (and above the device's maximum even then), on the emulated device as on a GPU.
#[test]
fn dynamic_shared_memory_needs_the_opt_in() {
    let gpu = Gpu::emulated();
    let buf = gpu.buffer(64).unwrap();
    let args = [launch::Arg::Ptr(buf.ptr()), launch::Arg::I32(16)];
    let dims = Dims::elementwise(16);
    // SAFETY: fear_zero writes 16 floats into a 64-byte buffer.
    let run = |shared| unsafe { launch::launch_with_shared(gpu.backend(), "fear_zero", dims, shared, &args) };
    run(16 * 1024).unwrap();
    let err = run(64 * 1024).unwrap_err().to_string();
    assert!(err.contains("opts in"), "{err}");
    gpu.backend().set_max_dynamic_shared("fear_zero", 64 * 1024).unwrap();
    run(64 * 1024).unwrap();
    assert!(gpu.backend().set_max_dynamic_shared("fear_zero", 1 << 20).is_err(), "1 MB per block");
    gpu.synchronize().unwrap();
    // The launch path that opts in by itself (as it sets the driver's attribute on a GPU): 80 KB,
    // above the 64 KB opted in so far, up to the smallest per-block maximum of the targets.
    assert!(run(80 * 1024).is_err());
    // SAFETY: as above.
    let opting_in = |shared| unsafe { launch::launch_bounded_opting_in(gpu.backend(), "fear_zero", dims, shared, &args) };
    opting_in(80 * 1024).unwrap();
    assert!(opting_in(300 * 1024).is_err(), "300 KB exceed every target's maximum");
    gpu.synchronize().unwrap();
}

/// A kernel whose `int` indices (with the grid-stride step) would wrap is refused, not run.
#[test]
fn lengths_that_would_wrap_a_32_bit_index_are_refused() {
    let gpu = Gpu::emulated();
    let mut mem = gpu.alloc(&MemoryLayout { work: 16, labels: 1, ..MemoryLayout::default() }).unwrap();
    let huge = Loc::new(Space::Work, 0, i32::MAX as usize - 1000);
    let err = gpu.launch(&mut mem, &Kernel::Elementwise(ElementwiseKernel::Zero { y: huge })).unwrap_err().to_string();
    assert!(err.contains("32-bit index"), "{err}");
}

/// `--profile` on the emulated device times each kernel's run (host time, labelled so).
#[test]
fn the_profile_says_which_clock_it_read() {
    let mut s = session(AnyDevice::Gpu(Gpu::emulated()), &Arch::from_index(5).unwrap());
    assert_eq!(s.profile_clock(), "host time");
    s.start_profile();
    let x = vec![0.5f32; 4 * 3 * 8 * 8];
    s.train_step(&x, &[1, 2, 3, 4], 0.1).unwrap();
    let rows = s.profile();
    assert!(rows.iter().map(|r| r.2).sum::<f64>() > 0.0, "{rows:?}");
}
