//! The tape and the memory plan, end to end on small graphs: gradients against finite
//! differences of the whole network's loss, the frozen prefix recording nothing, and SGD.

use fear::engine::{Cpu, Graph, GraphBuilder, Init, PlanOptions, Session};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A small network touching every op: stem conv + BN, a cell-like block with a ReLU-conv-BN,
/// a 3x3 pool and a sum of three terms, a reduction (2x2 pool + 1x1 conv), head BN, ReLU,
/// global pool, linear.
fn small_graph(n: usize) -> Graph {
    let mut b = GraphBuilder::new(&[n, 3, 6, 6]);
    let x = b.input();
    let w = b.param("stem.0.weight", &[4, 3, 3, 3], Init::Uniform(0.5));
    let x = b.conv(x, w, 1, 1);
    let x0 = b.batch_norm(x, "stem.1");
    let r = b.relu(x0);
    let w = b.param("cells.0.layers.0.op.1.weight", &[4, 4, 3, 3], Init::Uniform(0.4));
    let c = b.conv(r, w, 1, 1);
    let c = b.batch_norm(c, "cells.0.layers.0.op.2");
    let p = b.avg_pool3(x0);
    let shape = b.shape(x0).to_vec();
    let s = b.sum(&[c, p, x0], &shape);
    let r = b.relu(s);
    let w = b.param("cells.1.conv_a.op.1.weight", &[5, 4, 3, 3], Init::Uniform(0.4));
    let a = b.conv(r, w, 2, 1);
    let a = b.batch_norm(a, "cells.1.conv_a.op.2");
    let d = b.avg_pool2(s);
    let w = b.param("cells.1.downsample.1.weight", &[5, 4, 1, 1], Init::Uniform(0.5));
    let d = b.conv(d, w, 1, 0);
    let shape = b.shape(a).to_vec();
    let s = b.sum(&[d, a], &shape);
    let h = b.batch_norm(s, "lastact.0");
    let h = b.relu(h);
    let h = b.global_avg_pool(h);
    let w = b.param("classifier.weight", &[3, 5], Init::Uniform(0.5));
    let bias = b.param("classifier.bias", &[3], Init::Uniform(0.5));
    let logits = b.linear(h, w, bias);
    b.finish(logits)
}

fn batch(n: usize, seed: u64) -> (Vec<f64>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * 3 * 36).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y = (0..n).map(|_| rng.random_range(0..3)).collect();
    (x, y)
}

fn session(n: usize) -> Session<f64, Cpu> {
    let mut s = Session::new(Cpu, Box::new(small_graph), n, PlanOptions::default()).unwrap();
    s.init_params(7).unwrap();
    s
}

#[test]
fn gradients_match_finite_differences_of_the_loss() {
    let n = 5;
    let (x, y) = batch(n, 1);
    let mut s = session(n);
    s.forward_backward(&x, &y).unwrap();
    let params = s.read_all_params().unwrap();
    let grads = s.read_all_grads().unwrap();
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for i in (0..params.len()).step_by(3) {
        let mut loss_at = |v: f64| {
            let mut p = params.clone();
            p[i] = v;
            write_all(&mut s, &p);
            s.reset_state().unwrap();
            s.forward_backward(&x, &y).unwrap().loss
        };
        let fd = (loss_at(params[i] + h) - loss_at(params[i] - h)) / (2.0 * h);
        let err = (fd - grads[i]).abs() / (fd.abs().max(grads[i].abs()).max(1e-3));
        worst = worst.max(err);
        assert!(err < 1e-5, "parameter element {i}: finite difference {fd}, tape {}", grads[i]);
    }
    eprintln!("worst relative error {worst:e}");
}

fn write_all(s: &mut Session<f64, Cpu>, flat: &[f64]) {
    for p in s.params().to_vec() {
        s.write_named(&p.name, &flat[p.offset..p.offset + p.len()]).unwrap();
    }
}

#[test]
fn input_gradient_matches_finite_differences() {
    let n = 3;
    let (x, y) = batch(n, 2);
    let build = Box::new(small_graph);
    let opts = PlanOptions { input_grad: true, ..PlanOptions::default() };
    let mut s: Session<f64, Cpu> = Session::new(Cpu, build, n, opts).unwrap();
    s.init_params(3).unwrap();
    s.forward_backward(&x, &y).unwrap();
    let dx = s.read_input_grad(n).unwrap();
    for i in (0..x.len()).step_by(7) {
        let mut loss_at = |v: f64| {
            let mut xi = x.clone();
            xi[i] = v;
            s.forward_backward(&xi, &y).unwrap().loss
        };
        let fd = (loss_at(x[i] + 1e-6) - loss_at(x[i] - 1e-6)) / 2e-6;
        assert!((fd - dx[i]).abs() <= 1e-5 * fd.abs().max(1e-3), "input element {i}: fd {fd}, tape {}", dx[i]);
    }
}

/// Stage 2 of FEAR: everything before the last block frozen.
fn freeze_prefix(s: &mut Session<f64, Cpu>) {
    s.set_trainable(|name| name.starts_with("cells.1.") || name.starts_with("lastact.") || name.starts_with("classifier."));
}

#[test]
fn frozen_prefix_records_no_backward_and_saves_less() {
    let n = 4;
    let mut s = session(n);
    let full = s.program(n, true).unwrap().clone();
    freeze_prefix(&mut s);
    let frozen = s.program(n, true).unwrap().clone();
    assert!(frozen.backward_nodes < full.backward_nodes);
    assert!(frozen.saved_bytes < full.saved_bytes);
    // No backward kernel touches a frozen parameter's gradient or the stem's activations.
    let stem_len = s.params().iter().filter(|p| p.name.starts_with("stem") || p.name.starts_with("cells.0")).map(|p| p.len()).sum::<usize>();
    for k in &frozen.backward {
        for loc in k.locs() {
            if loc.space == fear::engine::Space::ParamGrads && k.name() != "zero" {
                assert!(loc.offset >= stem_len, "{} writes a frozen gradient at {loc:?}", k.name());
            }
        }
        assert!(
            !k.name().starts_with("conv_backward")
                || !matches!(k, fear::engine::Kernel::Conv(fear::engine::ops::ConvKernel::BackwardInput { g, .. }) if g.c_in == 3)
        );
    }
    // Exactly the nodes downstream of a trainable parameter: conv_a's conv and BN, the
    // downsample conv, the sum, lastact's BN, the ReLU, the global pool, the linear layer and the
    // loss. The ReLU before conv_a reads only frozen values, so it records nothing.
    assert_eq!(frozen.backward_nodes, 9);
}

#[test]
fn frozen_parameters_stay_bit_for_bit_and_trainable_ones_move() {
    let n = 4;
    let (x, y) = batch(n, 3);
    let mut s = session(n);
    freeze_prefix(&mut s);
    let before = s.read_all_params().unwrap();
    for _ in 0..3 {
        s.train_step(&x, &y, 0.1).unwrap();
    }
    let after = s.read_all_params().unwrap();
    for p in s.params() {
        let (b, a) = (&before[p.offset..p.offset + p.len()], &after[p.offset..p.offset + p.len()]);
        if s.is_trainable(&p.name).unwrap() {
            assert!(b != a, "{} did not change", p.name);
        } else {
            assert!(b.iter().zip(a).all(|(u, v)| u.to_bits() == v.to_bits()), "{} changed while frozen", p.name);
        }
    }
}

#[test]
fn frozen_gradients_equal_the_full_gradients_of_the_trainable_part() {
    let n = 4;
    let (x, y) = batch(n, 4);
    let mut s = session(n);
    s.forward_backward(&x, &y).unwrap();
    let full = s.read_all_grads().unwrap();
    freeze_prefix(&mut s);
    s.forward_backward(&x, &y).unwrap();
    let frozen = s.read_all_grads().unwrap();
    for p in s.params() {
        let r = p.offset..p.offset + p.len();
        if s.is_trainable(&p.name).unwrap() {
            for (a, b) in full[r.clone()].iter().zip(&frozen[r]) {
                assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{}: {a} vs {b}", p.name);
            }
        } else {
            assert!(frozen[r].iter().all(|g| *g == 0.0), "{} has a gradient while frozen", p.name);
        }
    }
}

#[test]
fn training_lowers_the_loss() {
    let n = 8;
    let (x, y) = batch(n, 5);
    let mut s = session(n);
    let first = s.forward_backward(&x, &y).unwrap().loss;
    let mut last = first;
    for _ in 0..30 {
        last = s.train_step(&x, &y, 0.05).unwrap().loss;
    }
    assert!(last < 0.5 * first, "loss went from {first} to {last}");
}

#[test]
fn a_partial_batch_runs_with_the_same_parameters() {
    let mut s = session(6);
    let (x, y) = batch(2, 6);
    let out = s.forward_backward(&x, &y).unwrap();
    assert_eq!(out.n, 2);
    assert!(out.loss.is_finite());
    let eval = s.evaluate(&x, &y).unwrap();
    assert!(eval.loss.is_finite());
}

#[test]
fn training_is_bit_identical_whatever_the_thread_count() {
    // Shards of a ranking run on different machines must agree: no reduction may depend on how
    // rayon splits the work.
    let n = 37;
    let (x, y) = batch(n, 8);
    let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            let mut s: Session<f32, Cpu> = Session::new(Cpu, Box::new(small_graph), n, PlanOptions { grad_clip: Some(1.0), ..PlanOptions::default() }).unwrap();
            s.init_params(5).unwrap();
            for _ in 0..3 {
                s.train_step(&x32, &y, 0.1).unwrap();
            }
            s.read_all_params().unwrap()
        })
    };
    let one = run(1);
    for threads in [2, 3, 8] {
        let other = run(threads);
        assert!(one.iter().zip(&other).all(|(a, b)| a.to_bits() == b.to_bits()), "{threads} threads differ from 1");
    }
}

/// FNV-1a over the bits of every parameter.
fn param_fingerprint(params: &[f32]) -> u64 {
    params.iter().flat_map(|p| p.to_le_bytes()).fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn training_is_bit_identical_to_the_recorded_parameters() {
    // Recorded from the planner before gradients were assigned by their first writer and sum
    // terms shared their node's gradient (issue 13 item 4): fewer passes, the same bits.
    let n = 9;
    let (x, y) = batch(n, 11);
    let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let mut s: Session<f32, Cpu> = Session::new(Cpu, Box::new(small_graph), n, PlanOptions::default()).unwrap();
    s.init_params(3).unwrap();
    for _ in 0..4 {
        s.train_step(&x32, &y, 0.1).unwrap();
    }
    let got = param_fingerprint(&s.read_all_params().unwrap());
    assert_eq!(got, 0xff55_75e8_1c57_95e0, "parameters after 4 steps: fingerprint {got:#x}");
}

/// Runs `kernel` (in the Work space) on the CPU device from the given Work contents.
fn run_kernel(work: &[f64], kernel: &fear::engine::Kernel) -> Vec<f64> {
    use fear::engine::{Device, Loc, MemoryLayout, Space};
    let layout = MemoryLayout { params: 0, state: 0, work: work.len(), half: 0, labels: 0 };
    let mut mem = Device::<f64>::alloc(&Cpu, &layout).unwrap();
    let all = Loc::new(Space::Work, 0, work.len());
    Cpu.write(&mut mem, all, work).unwrap();
    Cpu.launch(&mut mem, kernel).unwrap();
    Cpu.read(&mem, all).unwrap()
}

#[test]
fn assign_mode_is_zero_then_accumulate_bit_for_bit_and_ignores_what_dx_held() {
    use fear::engine::ops::{BnGeom, BnKernel, ConvGeom, ConvKernel, ElementwiseKernel};
    use fear::engine::{Kernel, Loc, Space};
    let mut at = 0;
    let mut loc = |len: usize| {
        at += len;
        Loc::new(Space::Work, at - len, len)
    };
    let g = ConvGeom { n: 3, c_in: 5, h: 7, w: 7, c_out: 4, k: 3, stride: 2, pad: 1 };
    let (cx, cw, cy) = (loc(g.x_len()), loc(g.w_len()), loc(g.y_len()));
    let b = BnGeom { n: 3, c: 5, hw: 9 };
    let (bx, bdy, gamma, mean, invstd, bdx) = (loc(b.len()), loc(b.len()), loc(5), loc(5), loc(5), loc(b.len()));
    let (y, dy, dx) = (loc(40), loc(40), loc(40));
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut work: Vec<f64> = (0..at).map(|_| rng.random_range(-1.0..1.0)).collect();
    for v in &mut work[invstd.offset..invstd.end()] {
        *v = v.abs() + 0.5;
    }
    // Each case: the output it writes, and its kernel in accumulate (true) or assign mode.
    type Case = (Loc, Box<dyn Fn(bool) -> Kernel>);
    let cases: Vec<Case> = vec![
        (
            cx,
            Box::new(move |accumulate| {
                Kernel::Conv(ConvKernel::BackwardInput {
                    g,
                    dy: cy,
                    bn: None,
                    w: cw,
                    mask: None,
                    mask_norm: None,
                    dx: cx,
                    accumulate,
                    precision: fear::engine::precision::Precision::Fp32,
                })
            }),
        ),
        (
            bdx,
            Box::new(move |accumulate| {
                Kernel::Bn(BnKernel::Backward {
                    g: b,
                    x: bx,
                    dy: bdy,
                    gamma,
                    mean,
                    invstd,
                    dx: Some(bdx),
                    dx_coef: None,
                    dgamma: None,
                    dbeta: None,
                    accumulate,
                })
            }),
        ),
        (dx, Box::new(move |accumulate| Kernel::Elementwise(ElementwiseKernel::ReluBackward { y, dy, dx, accumulate }))),
        (dx, Box::new(move |accumulate| Kernel::Elementwise(ElementwiseKernel::Accumulate { acc: dx, x: dy, accumulate }))),
    ];
    for (out, kernel) in cases {
        let assigned = run_kernel(&work, &kernel(false));
        let mut zeroed = work.clone();
        zeroed[out.offset..out.end()].fill(0.0);
        let reference = run_kernel(&zeroed, &kernel(true));
        let name = kernel(true).name();
        assert!(assigned.iter().zip(&reference).all(|(a, r)| a.to_bits() == r.to_bits()), "{name}: assign differs from zero + accumulate");
        // Accumulate adds the same values onto what dx held.
        let added = run_kernel(&work, &kernel(true));
        for i in out.offset..out.end() {
            assert!((added[i] - (work[i] + assigned[i])).abs() <= 1e-12, "{name}: accumulate is not dx + assign at {i}");
        }
        assert_ne!(assigned[out.offset..out.end()], work[out.offset..out.end()], "{name}: the test needs a dx that changes");
    }
}

#[test]
fn gradients_are_neither_zeroed_nor_copied_where_a_writer_or_a_sum_can_own_them() {
    let n = 4;
    let mut s = session(n);
    let p = s.program(n, true).unwrap().clone();
    let count = |name: &str| p.backward.iter().filter(|k| k.name() == name).count();
    // One zeroing pass for the parameter gradients and none for activation gradients: every
    // first writer of one assigns it (softmax, linear, global-pool, pool, conv, BN, ReLU backward).
    let zeroed: Vec<_> = p.backward.iter().filter(|k| k.name() == "zero").map(|k| k.locs()[0].space).collect();
    assert_eq!(zeroed, [fear::engine::Space::ParamGrads]);
    // Sum terms with one consumer (the BN outputs, the 3x3 pool, the downsample conv) share their
    // sum's gradient; only x0, which the stem ReLU and the pool also read, gets a copy, assigned
    // by its first writer.
    assert_eq!(count("accumulate"), 1);
    let first_writers = p.backward.iter().filter(|k| !k.accumulates()).count();
    assert!(first_writers >= 5, "{first_writers} kernels assign");
}

/// The CPU runs the unfused plan whatever options it is given: `set_options` (which FEAR and
/// shortreg call with the default options, `fuse` on) keeps fusion off on a device that does not
/// fuse, as `Session::new` does. (It once did not, and the CPU ran the fused kernels' CPU faces.)
#[test]
fn a_cpu_session_never_plans_fused_kernels() {
    use fear::engine::ops::{BnKernel, ConvKernel, ElementwiseKernel};
    use fear::engine::Kernel;
    let arch = fear::space::parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|").unwrap();
    let cfg = fear::net::NetConfig { c: 8, n: 1, classes: 10, image_size: 8 };
    let build = move |b| fear::net::tiny_network(&arch, &cfg, b);
    let mut s: Session<f32, Cpu> = Session::new(Cpu, Box::new(build), 2, PlanOptions::default()).unwrap();
    let fused = |k: &Kernel| {
        matches!(
            k,
            Kernel::Elementwise(ElementwiseKernel::NodeSum { .. })
                | Kernel::Conv(ConvKernel::Forward { relu: true, .. } | ConvKernel::Backward { .. })
                | Kernel::Bn(BnKernel::BackwardPair { .. })
        )
    };
    for set_options in [false, true] {
        if set_options {
            s.set_options(PlanOptions { grad_clip: Some(5.0), ..PlanOptions::default() });
        }
        for train in [true, false] {
            let p = s.program(2, train).unwrap();
            let n = p.forward.iter().chain(&p.backward).filter(|k| fused(k)).count();
            assert_eq!(n, 0, "{n} fused kernels in a CPU plan (train {train}, after set_options: {set_options})");
            assert!(p.forward.iter().any(|k| matches!(k, Kernel::Elementwise(ElementwiseKernel::Add { .. }))), "the plan has no node sums at all");
        }
    }
}

/// The fused plan runs the backwards of two batch norms whose convolutions apply them (here the
/// batch norms of the two convolutions leaving each cell's node 0) as one kernel: one pair per
/// cell, two launches fewer each; none unfused or under a probe, and the forward untouched.
#[test]
fn sibling_batch_norm_backwards_pair_in_the_fused_plan_only() {
    use fear::engine::ops::BnKernel;
    use fear::engine::plan::plan;
    use fear::engine::Kernel;
    let arch = fear::space::parse_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|").unwrap();
    let cfg = fear::net::NetConfig { c: 8, n: 1, classes: 10, image_size: 12 };
    let graph = fear::net::tiny_network(&arch, &cfg, 3);
    let trainable = vec![true; graph.params.len()];
    let is_pair = |k: &Kernel| matches!(k, Kernel::Bn(BnKernel::BackwardPair { .. }));
    let launches = |ks: &[Kernel]| ks.iter().map(|k| k.launch_names().len()).sum::<usize>();
    let fused = plan(&graph, &trainable, &PlanOptions::default());
    let pairs = fused.backward.iter().filter(|k| is_pair(k)).count();
    assert_eq!(pairs, 3, "one pair per cell (3 cells)");
    assert!(!fused.forward.iter().any(is_pair));
    // Each pair's halves: statistics-only backwards (their convolutions apply dx) of one plane.
    for k in fused.backward.iter().filter(|k| is_pair(k)) {
        let Kernel::Bn(BnKernel::BackwardPair { first, second }) = k else { unreachable!() };
        assert_eq!((first.g.n, first.g.hw), (second.g.n, second.g.hw));
        assert_eq!(k.launch_names(), ["fear_bn_backward_stats", "fear_bn_backward_finalize"]);
    }
    // Unpaired, the same backwards take two launches more per pair: a probed plan (which fuses
    // nothing) and an unfused one have no pairs.
    let unpaired: Vec<Kernel> = fused
        .backward
        .iter()
        .flat_map(|k| match k {
            Kernel::Bn(BnKernel::BackwardPair { first, second }) => vec![Kernel::Bn(first.kernel()), Kernel::Bn(second.kernel())],
            k => vec![k.clone()],
        })
        .collect();
    assert_eq!(launches(&unpaired), launches(&fused.backward) + 2 * pairs);
    for opts in [PlanOptions { fuse: false, ..PlanOptions::default() }, PlanOptions { fisher: true, ..PlanOptions::default() }] {
        let p = plan(&graph, &trainable, &opts);
        assert!(!p.backward.iter().any(is_pair), "{opts:?}");
    }
}
