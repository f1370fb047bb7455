//! Capturing a training step (a CUDA graph) and replaying it changes nothing but the number of
//! launches: the same steps with capture on and off leave bit-identical losses, hits, parameters,
//! gradients and BN statistics, across re-plans (freezing), new batch sizes (scratch memory
//! growth) and eval steps. On the emulated GPU always; on a real one with `FEAR_TEST_CUDA=1`.

use fear::engine::cuda::{Gpu, GpuCapture};
use fear::engine::ops::ElementwiseKernel;
use fear::engine::{Cpu, Device, Kernel, Loc, MemoryLayout, PlanOptions, ResidentImages, Session, Space, StepOutput};
use fear::net::{stage2_prefixes, tiny_network, NetConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CFG: NetConfig = NetConfig { c: 4, n: 1, classes: 10, image_size: 16 };
const BATCH: usize = 5;

/// What a run leaves: every step's output, then all parameters, gradients and BN statistics.
#[derive(Debug, PartialEq)]
struct Outcome {
    steps: Vec<StepOutput>,
    params: Vec<f32>,
    grads: Vec<f32>,
    states: Vec<Vec<f32>>,
}

fn session<D: Device<f32>>(device: D) -> Session<f32, D> {
    let arch = fear::space::parse_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|").unwrap();
    let build = move |b| tiny_network(&arch, &CFG, b);
    let opts = PlanOptions { grad_clip: Some(0.5), ..PlanOptions::default() };
    let mut s = Session::new(device, Box::new(build), BATCH, opts).unwrap();
    s.init_params(11).unwrap();
    s
}

fn batch(rng: &mut ChaCha8Rng, n: usize) -> (Vec<f32>, Vec<u32>) {
    let images = (0..n * 3 * 16 * 16).map(|_| rng.random_range(-2.0..2.0)).collect();
    (images, (0..n).map(|_| rng.random_range(0..10)).collect())
}

/// Full steps with eval steps between them, a gradient-only step, FEAR's stage-2 freeze, a
/// larger batch (the scratch memory grows), the first batch size again, then a smaller last
/// batch. With `capture` on and a device that captures, also checks which captures exist.
fn scenario<D: Device<f32>>(device: D, capture: bool, captures: bool) -> (Outcome, Session<f32, D>) {
    let mut s = session(device);
    s.set_capture(capture);
    let expect = capture && captures;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut steps = Vec::new();
    let mut train = |s: &mut Session<f32, D>, n: usize, lr: f64| {
        let (x, y) = batch(&mut rng, n);
        let out = s.train_step(&x, &y, lr).unwrap();
        let (x, y) = batch(&mut rng, n);
        (out, s.evaluate(&x, &y).unwrap(), s.forward_backward(&x, &y).unwrap())
    };
    for (i, lr) in [0.1, 0.05, 0.2].into_iter().enumerate() {
        let (t, e, g) = train(&mut s, BATCH, lr);
        steps.extend([t, e, g]);
        assert_eq!(s.captured(BATCH, true, true).is_some(), expect, "full step {i}");
        assert_eq!(s.captured(BATCH, false, false).is_some(), expect, "eval step {i}");
        assert_eq!(s.captured(BATCH, true, false).is_some(), expect, "gradient step {i}");
    }
    s.train_only(&stage2_prefixes(&CFG, 0));
    assert!(s.captured(BATCH, true, true).is_none(), "a re-plan must drop the captures");
    for lr in [0.1, 0.3] {
        let (t, e, g) = train(&mut s, BATCH, lr);
        steps.extend([t, e, g]);
    }
    assert_eq!(s.captured(BATCH, true, true).is_some(), expect, "frozen step");
    let (t, ..) = train(&mut s, BATCH + 2, 0.1);
    steps.push(t);
    assert!(s.captured(BATCH, true, true).is_none(), "growing the scratch memory must drop the captures");
    assert_eq!(s.captured(BATCH + 2, true, true).is_some(), expect, "larger batch");
    for n in [BATCH, BATCH - 2] {
        let (t, e, g) = train(&mut s, n, 0.1);
        steps.extend([t, e, g]);
    }
    let states = s.graph().states.iter().map(|st| s.read_state(&st.name).unwrap()).collect();
    let outcome = Outcome { steps, params: s.read_all_params().unwrap(), grads: s.read_all_grads().unwrap(), states };
    (outcome, s)
}

fn assert_same(eager: &Outcome, replayed: &Outcome) {
    assert_eq!(eager.steps, replayed.steps, "step outputs");
    assert!(eager.params == replayed.params, "parameters differ");
    assert!(eager.grads == replayed.grads, "gradients differ");
    assert!(eager.states == replayed.states, "BN statistics differ");
}

fn launches(s: &Session<f32, Gpu>) -> usize {
    s.captured(BATCH - 2, true, true).map(GpuCapture::launches).expect("a capture of the last step")
}

#[test]
fn replayed_steps_on_the_emulated_gpu_equal_eager_ones_bit_for_bit() {
    let (eager, _) = scenario(Gpu::emulated(), false, true);
    let (replayed, s) = scenario(Gpu::emulated(), true, true);
    assert_same(&eager, &replayed);
    assert!(launches(&s) > 50, "the step holds {} launches", launches(&s));
}

#[test]
fn capture_on_the_cpu_runs_eagerly() {
    let (eager, _) = scenario(Cpu, false, false);
    let (replayed, _) = scenario(Cpu, true, false);
    assert_same(&eager, &replayed);
}

#[test]
fn profiling_launches_eagerly_even_with_capture_on() {
    let mut s = session(Gpu::emulated());
    s.set_capture(true);
    s.start_profile();
    let (x, y) = batch(&mut ChaCha8Rng::seed_from_u64(1), BATCH);
    s.train_step(&x, &y, 0.1).unwrap();
    assert!(s.captured(BATCH, true, true).is_none());
    assert!(s.profile().iter().map(|r| r.1).sum::<usize>() > 50, "every kernel was timed");
    s.stop_profile();
    s.train_step(&x, &y, 0.1).unwrap();
    assert!(s.captured(BATCH, true, true).is_some());
}

/// Stream capture's rules, held by the emulated backend as by the driver: no copies or waits
/// inside a capture (refused, and the capture is then invalid), and no nesting.
#[test]
fn a_capture_refuses_copies_and_waits() {
    let gpu = Gpu::emulated();
    let buf = gpu.buffer(64).unwrap();
    let b = gpu.backend();
    let forbidden: [(&str, &dyn Fn() -> anyhow::Result<()>); 4] = [
        ("upload", &|| buf.upload(&[1; 16])),
        ("download", &|| b.download(buf.ptr(), &mut [0; 16])),
        ("synchronize", &|| b.synchronize()),
        ("allocation", &|| gpu.buffer(16).map(drop)),
    ];
    for (what, op) in forbidden {
        b.begin_capture().unwrap();
        let err = op().expect_err(what).to_string();
        assert!(err.contains("inside a capture"), "{what}: {err}");
        assert!(b.begin_capture().is_err(), "captures do not nest");
        let end = b.end_capture().err().unwrap_or_else(|| panic!("{what}: the capture should be invalid")).to_string();
        assert!(end.contains("invalid"), "{what}: {end}");
        op().unwrap_or_else(|e| panic!("{what} after the capture: {e}"));
    }
    assert!(b.end_capture().is_err(), "end without begin");
}

/// A capture records the kernels without running them and keeps the addresses: a replay reads
/// whatever the inputs hold then. After the memory is reallocated it is refused.
#[test]
fn a_capture_runs_only_when_replayed_and_only_on_its_buffers() {
    let gpu = Gpu::emulated();
    let mut mem = gpu.alloc(&MemoryLayout { work: 16, labels: 1, ..MemoryLayout::default() }).unwrap();
    let (x, y) = (Loc::new(Space::Work, 0, 8), Loc::new(Space::Work, 8, 8));
    gpu.write(&mut mem, x, &[-1.0, 2.0, -3.0, 4.0, -5.0, 6.0, -7.0, 8.0]).unwrap();
    let captured = gpu.capture(&mut mem, &[&Kernel::Elementwise(ElementwiseKernel::Relu { x, y })]).unwrap().unwrap();
    assert_eq!(captured.launches(), 1);
    assert_eq!(gpu.read(&mem, y).unwrap(), [0.0; 8], "capturing ran the kernel");
    gpu.write(&mut mem, x, &[1.0, -2.0, 3.0, -4.0, 5.0, -6.0, 7.0, -8.0]).unwrap();
    gpu.replay(&mut mem, &captured).unwrap();
    assert_eq!(gpu.read(&mem, y).unwrap(), [1.0, 0.0, 3.0, 0.0, 5.0, 0.0, 7.0, 0.0]);
    gpu.grow_scratch(&mut mem, &MemoryLayout { work: 32, labels: 1, ..MemoryLayout::default() }).unwrap();
    let err = gpu.replay(&mut mem, &captured).unwrap_err().to_string();
    assert!(err.contains("other buffers"), "{err}");
    let other = gpu.alloc(&MemoryLayout { work: 16, labels: 1, ..MemoryLayout::default() }).unwrap();
    assert!(gpu.replay(&mut { other }, &captured).is_err(), "replayed on another memory");
}

/// The same on cuda:0 through the driver (stream capture, CUDA graphs), and the graph holds as
/// many kernel nodes as the emulated capture holds launches.
#[test]
fn replayed_steps_on_a_real_gpu_equal_eager_ones_bit_for_bit() {
    if std::env::var("FEAR_TEST_CUDA").as_deref() != Ok("1") {
        eprintln!("skipped: set FEAR_TEST_CUDA=1 on a machine with a GPU to check CUDA graph capture");
        return;
    }
    let gpu = || Gpu::cuda(0).expect("FEAR_TEST_CUDA=1 but no usable GPU");
    let (eager, _) = scenario(gpu(), false, true);
    let (replayed, s) = scenario(gpu(), true, true);
    assert_same(&eager, &replayed);
    let (_, emulated) = scenario(Gpu::emulated(), true, true);
    assert_eq!(launches(&s), launches(&emulated), "CUDA graph nodes vs emulated launches");
}

/// A training loop fed from the device alone (`Session::train_step_queued`: the data kernel
/// gathers the labels and writes the learning rate, each step replays its graph, loss and hits
/// stay on the device until one read at the end) leaves the same bits as the same steps run
/// eagerly with labels and learning rate uploaded and the figures read after each step; a
/// partial last batch included (13 images in batches of 5).
#[test]
fn queued_steps_fed_from_the_device_equal_eager_uploaded_ones_bit_for_bit() {
    use fear::data::augment::Augment;
    use fear::data::dataset::Normalization;
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let count = 13;
    let images: Vec<u8> = (0..count * 3 * 16 * 16).map(|_| rng.random()).collect();
    let labels: Vec<u32> = (0..count).map(|_| rng.random_range(0..10)).collect();
    let aug = Augment { size: 16, pad: 2, flip: true, cutout: 4, fill: 3, norm: Normalization::CIFAR10 };
    let order: Vec<u32> = (0..count as u32).rev().collect();
    let gpu = Gpu::emulated();
    let starts: Vec<usize> = (0..count).step_by(BATCH).collect();
    let size = |start: usize| BATCH.min(count - start);
    let lr = |k: usize| 0.1 / (k + 1) as f64;

    let mut queued = session(gpu.clone());
    let mut fed = gpu.upload_split(&images, &aug).unwrap();
    fed.set_order(&order).unwrap();
    fed.set_labels(&labels).unwrap();
    queued.set_capture(true);
    queued.begin_queued_steps(starts.len()).unwrap();
    for (k, &start) in starts.iter().enumerate() {
        queued.train_step_queued(&fed, 9, 2, start, size(start), lr(k), k).unwrap();
    }
    let figures = queued.read_queued_steps(starts.len()).unwrap();
    assert!(queued.captured(BATCH, true, true).is_some() && queued.captured(3, true, true).is_some(), "the queued steps were not replayed graphs");

    let mut eager = session(gpu.clone());
    let mut uploaded = gpu.upload_split(&images, &aug).unwrap();
    uploaded.set_order(&order).unwrap();
    for (k, &start) in starts.iter().enumerate() {
        let batch_labels: Vec<u32> = order[start..start + size(start)].iter().map(|&i| labels[i as usize]).collect();
        let out = eager.train_step_resident(&uploaded, 9, 2, start, &batch_labels, lr(k)).unwrap();
        assert_eq!((figures[k].0.to_bits(), figures[k].1), (out.loss.to_bits(), out.correct), "step {k}");
    }
    let (a, b) = (queued.read_all_params().unwrap(), eager.read_all_params().unwrap());
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "parameters differ between queued and eager steps");
    // Without labels on the device a queued step is refused, not fed stale labels.
    let mut no_labels = session(gpu.clone());
    no_labels.begin_queued_steps(1).unwrap();
    let err = no_labels.train_step_queued(&uploaded, 9, 2, 0, BATCH, 0.1, 0).unwrap_err().to_string();
    assert!(err.contains("holds no labels"), "{err}");
}
