//! Micro-benchmark of the CPU ops at the NATS-Bench TinyNetwork's shapes (C=16, N=5, 32x32
//! input, batch 64, f32): median milliseconds per call.
//!
//! `cargo bench --bench cpu_ops [FILTER...]` (names containing any FILTER); RAYON_NUM_THREADS sets
//! the thread count; FEAR_BENCH_IM2COL=1 also times the im2col + GEMM convolution path.

use std::hint::black_box;
use std::time::{Duration, Instant};

use fear::engine::ops::{batchnorm::*, conv::*, elementwise::*, linear::*, loss::*, pool::*};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 64;

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

struct Bench {
    filter: Vec<String>,
    /// Also time the im2col + GEMM convolution path (FEAR_BENCH_IM2COL=1); not in the sum.
    im2col: bool,
    total_ms: f64,
}

impl Bench {
    /// Median of at least 5 and at most 50 timed calls (after 2 warm-up calls), stopping after ~1 s.
    fn run(&mut self, name: &str, mut f: impl FnMut()) {
        if !self.filter.is_empty() && !self.filter.iter().any(|p| name.contains(p.as_str())) {
            return;
        }
        f();
        f();
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 5 || (times.len() < 50 && start.elapsed() < Duration::from_secs(1)) {
            let t = Instant::now();
            f();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = times[times.len() / 2];
        if !name.contains("(im2col)") {
            self.total_ms += med;
        }
        println!("{name:<44} {med:>9.3} ms   (min {:.3}, {} runs)", times[0], times.len());
    }
}

fn conv(b: &mut Bench, rng: &mut ChaCha8Rng, c_in: usize, c_out: usize, hw: usize, k: usize, stride: usize) {
    let g = ConvGeom { n: BATCH, c_in, h: hw, w: hw, c_out, k, stride, pad: k / 2 };
    let (x, w, dy) = (rand_vec(rng, g.x_len()), rand_vec(rng, g.w_len()), rand_vec(rng, g.y_len()));
    let (mut y, mut dx, mut dw) = (vec![0.0; g.y_len()], vec![0.0; g.x_len()], vec![0.0; g.w_len()]);
    let tag = format!("conv{k}x{k} {c_in}->{c_out} {hw}x{hw} s{stride}");
    let flop = 2.0 * g.y_len() as f64 * (c_in * k * k) as f64;
    println!("# {tag}: {:.0} MFLOP per pass", flop / 1e6);
    b.run(&format!("{tag} fwd"), || conv_forward(&g, black_box(&x), &w, &mut y));
    b.run(&format!("{tag} bwd_input"), || conv_backward_input(&g, black_box(&dy), &w, &mut dx));
    b.run(&format!("{tag} bwd_weight"), || conv_backward_weight(&g, black_box(&x), &dy, &mut dw));
    if b.im2col {
        b.run(&format!("{tag} fwd (im2col)"), || conv_forward_im2col(&g, black_box(&x), &w, &mut y));
        b.run(&format!("{tag} bwd_input (im2col)"), || conv_backward_input_im2col(&g, black_box(&dy), &w, &mut dx));
        b.run(&format!("{tag} bwd_weight (im2col)"), || conv_backward_weight_im2col(&g, black_box(&x), &dy, &mut dw));
    }
}

fn planes(b: &mut Bench, rng: &mut ChaCha8Rng, c: usize, hw: usize) {
    let len = BATCH * c * hw * hw;
    let (x, dy) = (rand_vec(rng, len), rand_vec(rng, len));
    let (mut y, mut dx) = (vec![0.0f32; len], vec![0.0f32; len]);
    let tag = format!("{c}x{hw}x{hw}");

    let bg = BnGeom { n: BATCH, c, hw: hw * hw };
    let (gamma, beta) = (vec![1.0f32; c], vec![0.0f32; c]);
    let (mut rm, mut rv, mut mean, mut invstd) = (vec![0.0f32; c], vec![1.0f32; c], vec![0.0f32; c], vec![0.0f32; c]);
    let (mut dg, mut db) = (vec![0.0f32; c], vec![0.0f32; c]);
    b.run(&format!("bn train fwd {tag}"), || bn_train_forward(&bg, black_box(&x), &gamma, &beta, 1e-5, 0.1, &mut rm, &mut rv, &mut y, &mut mean, &mut invstd));
    b.run(&format!("bn bwd {tag}"), || bn_backward(&bg, black_box(&x), &dy, &gamma, &mean, &invstd, Some(&mut dx), Some(&mut dg), Some(&mut db)));
    b.run(&format!("relu fwd {tag}"), || relu(black_box(&x), &mut y));
    b.run(&format!("relu bwd {tag}"), || relu_backward(black_box(&x), &dy, &mut dx));
    b.run(&format!("add {tag}"), || add(black_box(&x), &dy, &mut y));
    b.run(&format!("accumulate {tag}"), || accumulate(&mut dx, black_box(&dy)));

    let pg = PoolGeom { n: BATCH, c, h: hw, w: hw };
    b.run(&format!("avg_pool3x3 fwd {tag}"), || avg_pool3_forward(&pg, black_box(&x), &mut y));
    b.run(&format!("avg_pool3x3 bwd {tag}"), || avg_pool3_backward(&pg, black_box(&dy), &mut dx));
    if hw > 8 {
        let mut y2 = vec![0.0f32; len / 4];
        b.run(&format!("avg_pool2x2 fwd {tag}"), || avg_pool2_forward(&pg, black_box(&x), &mut y2));
        let dy2 = rand_vec(rng, len / 4);
        b.run(&format!("avg_pool2x2 bwd {tag}"), || avg_pool2_backward(&pg, black_box(&dy2), &mut dx));
    }
}

fn head(b: &mut Bench, rng: &mut ChaCha8Rng) {
    let (c, hw, classes) = (64, 64, 10);
    let x = rand_vec(rng, BATCH * c * hw);
    let mut feat = vec![0.0f32; BATCH * c];
    b.run("global_avg_pool fwd 64x8x8", || gap_forward(BATCH, c, hw, black_box(&x), &mut feat));
    let mut dx = vec![0.0f32; x.len()];
    b.run("global_avg_pool bwd 64x8x8", || gap_backward(BATCH, c, hw, black_box(&feat), &mut dx));
    let g = LinearGeom { n: BATCH, d_in: c, d_out: classes };
    let (w, bias) = (rand_vec(rng, c * classes), rand_vec(rng, classes));
    let mut logits = vec![0.0f32; BATCH * classes];
    b.run("linear fwd 64->10", || linear_forward(&g, black_box(&feat), &w, Some(&bias), &mut logits));
    let (mut dfeat, mut dw, mut db) = (vec![0.0f32; feat.len()], vec![0.0f32; w.len()], vec![0.0f32; classes]);
    b.run("linear bwd 64->10", || linear_backward(&g, &feat, &w, black_box(&logits), Some(&mut dfeat), Some(&mut dw), Some(&mut db)));
    let labels: Vec<u32> = (0..BATCH).map(|i| (i % classes) as u32).collect();
    let mut probs = vec![0.0f32; logits.len()];
    b.run("softmax_xent fwd", || {
        black_box(softmax_xent_forward(BATCH, classes, black_box(&logits), &labels, &mut probs));
    });
    let mut dl = vec![0.0f32; logits.len()];
    b.run("softmax_xent bwd", || softmax_xent_backward(BATCH, classes, black_box(&probs), &labels, 1.0, &mut dl));
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let im2col = std::env::var("FEAR_BENCH_IM2COL").is_ok_and(|v| v == "1");
    let mut b = Bench { filter, im2col, total_ms: 0.0 };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    println!("CPU ops, f32, batch {BATCH}, {} rayon threads; median ms per call", rayon::current_num_threads());
    conv(&mut b, &mut rng, 3, 16, 32, 3, 1); // stem
    for (c, hw) in [(16, 32), (32, 16), (64, 8)] {
        conv(&mut b, &mut rng, c, c, hw, 3, 1); // nor_conv_3x3
        conv(&mut b, &mut rng, c, c, hw, 1, 1); // nor_conv_1x1
    }
    conv(&mut b, &mut rng, 16, 32, 32, 3, 2); // reduction conv_a
    conv(&mut b, &mut rng, 32, 64, 16, 3, 2);
    conv(&mut b, &mut rng, 32, 32, 16, 3, 1); // reduction conv_b is a plain 3x3
    conv(&mut b, &mut rng, 16, 32, 16, 1, 1); // reduction shortcut (after the 2x2 pool)
    conv(&mut b, &mut rng, 32, 64, 8, 1, 1);
    for (c, hw) in [(16, 32), (32, 16), (64, 8)] {
        planes(&mut b, &mut rng, c, hw);
    }
    head(&mut b, &mut rng);
    println!("sum of medians: {:.3} ms", b.total_ms);
}
