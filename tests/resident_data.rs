//! Training from a split resident on the device (images uploaded once, each batch augmented by
//! the data kernel) against the host path (batches augmented on the CPU and uploaded): on the
//! same device they must train identically, bit for bit, over epochs with a partial last batch,
//! a stage-2 freeze and a change of batch size, with and without step capture. Run on the
//! emulated GPU here; with FEAR_TEST_CUDA=1 on cuda:0 as well.

use fear::data::augment::Augment;
use fear::data::dataset::{Normalization, Split};
use fear::engine::cuda::{Gpu, ResidentSplit};
use fear::engine::{Cpu, PlanOptions, ResidentImages, Session};
use fear::net::{stage2_prefixes, tiny_network, NetConfig};
use fear::train::{train_epoch, EpochReport, TrainSplit};
use rand::{Rng, SeedableRng};

const SIZE: usize = 16;

fn split(count: usize, seed: u64) -> Split {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Split { images: (0..count * 3 * SIZE * SIZE).map(|_| rng.random()).collect(), labels: (0..count).map(|_| rng.random_range(0..10)).collect() }
}

/// Every random choice on: crop from padding, flip, Cutout, a non-zero fill.
fn augment() -> Augment {
    Augment { size: SIZE, pad: 2, flip: true, cutout: 6, fill: 9, norm: Normalization::CIFAR10 }
}

fn session(gpu: &Gpu) -> Session<f32, Gpu> {
    let arch = fear::space::parse_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|").unwrap();
    let cfg = NetConfig { c: 4, n: 1, classes: 10, image_size: SIZE };
    let opts = PlanOptions { grad_clip: Some(5.0), ..PlanOptions::default() };
    let mut s = Session::new(gpu.clone(), Box::new(move |b| tiny_network(&arch, &cfg, b)), 16, opts).unwrap();
    s.init_params(3).unwrap();
    s
}

/// Two epochs at batch 16 over 40 images (16, 16, 8), then stage 2 at batch 32 (32, 8).
fn train(s: &mut Session<f32, Gpu>, data: &mut TrainSplit<ResidentSplit>) -> Vec<EpochReport> {
    let mut reports = Vec::new();
    for epoch in 0..2 {
        reports.push(train_epoch(s, data, 16, 7, epoch, 0.1, &mut |_| {}).unwrap());
    }
    s.train_only(&stage2_prefixes(&NetConfig { c: 4, n: 1, classes: 10, image_size: SIZE }, 0));
    reports.push(train_epoch(s, data, 32, 8, 0, 0.05, &mut |_| {}).unwrap());
    reports
}

fn resident_and_host_train_identically(gpu: &Gpu) {
    let data = split(40, 1);
    let (mut on_device, mut on_host) = (session(gpu), session(gpu));
    let mut resident = TrainSplit::for_device(gpu, &data, augment()).unwrap();
    assert!(resident.is_resident());
    let a = train(&mut on_device, &mut resident);
    let b = train(&mut on_host, &mut TrainSplit::on_host(&data, augment()));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.train_acc.to_bits(), x.train_loss.to_bits(), x.images), (y.train_acc.to_bits(), y.train_loss.to_bits(), y.images));
    }
    assert_eq!(a.iter().map(|r| r.images).collect::<Vec<_>>(), [40, 40, 40]);
    let (p, q) = (on_device.read_all_params().unwrap(), on_host.read_all_params().unwrap());
    assert!(p.iter().zip(&q).all(|(x, y)| x.to_bits() == y.to_bits()), "parameters differ between the resident and the host path");
    // Resident batches under step capture: the data kernel runs before each replayed step.
    let mut captured = session(gpu);
    captured.set_capture(true);
    let c = train(&mut captured, &mut TrainSplit::for_device(gpu, &data, augment()).unwrap());
    assert!(captured.captured(32, true, true).is_some(), "stage 2 was not captured");
    assert_eq!(c.iter().map(|r| r.train_loss.to_bits()).collect::<Vec<_>>(), a.iter().map(|r| r.train_loss.to_bits()).collect::<Vec<_>>());
    let r = captured.read_all_params().unwrap();
    assert!(r.iter().zip(&p).all(|(x, y)| x.to_bits() == y.to_bits()), "parameters differ with step capture");
}

#[test]
fn resident_and_host_batches_train_identically_on_the_emulated_gpu() {
    resident_and_host_train_identically(&Gpu::emulated());
}

#[test]
fn resident_and_host_batches_train_identically_on_a_real_gpu() {
    if std::env::var("FEAR_TEST_CUDA").is_err() {
        eprintln!("skipped: set FEAR_TEST_CUDA=1 on a machine with a GPU");
        return;
    }
    resident_and_host_train_identically(&Gpu::cuda(0).expect("FEAR_TEST_CUDA is set but cuda:0 cannot be opened"));
}

#[test]
fn the_cpu_keeps_batches_on_the_host() {
    let data = split(4, 2);
    assert!(!TrainSplit::for_device(&Cpu, &data, augment()).unwrap().is_resident());
}

#[test]
fn a_resident_split_refuses_orders_and_batches_it_cannot_hold() {
    let gpu = Gpu::emulated();
    let data = split(5, 3);
    let mut r = gpu.upload_split(&data.images, &augment()).unwrap();
    assert_eq!(r.count(), 5);
    let err = r.set_order(&[0, 5]).unwrap_err().to_string();
    assert!(err.contains("image index 5 is out of range"), "{err}");
    r.set_order(&[4, 3, 2]).unwrap();
    let floats = augment().image_floats();
    let mem = fear::engine::Device::<f32>::alloc(&gpu, &fear::engine::MemoryLayout { params: 0, state: 0, work: 4 * floats, half: 0, labels: 0 }).unwrap();
    let out = fear::engine::Loc::new(fear::engine::Space::Work, 0, 2 * floats);
    let err = gpu.augment_batch(&r, 0, 0, 2, 2, &mem, out).unwrap_err().to_string();
    assert!(err.contains("beyond the epoch's 3"), "{err}");
    gpu.augment_batch(&r, 0, 0, 1, 2, &mem, out).unwrap();
    let err = gpu.upload_split(&data.images[..100], &augment()).unwrap_err().to_string();
    assert!(err.contains("not whole 16x16 RGB images"), "{err}");
}
