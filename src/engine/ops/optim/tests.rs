//! The optimiser ops' CPU face: SGD step by step against PyTorch's update rule, clipping by the
//! global norm (part of the `ops` test target, src/engine/ops/tests.rs).

use fear::engine::ops::optim::*;

#[test]
fn sgd_matches_pytorch_semantics_over_two_steps() {
    // PyTorch SGD: d = g + wd*w; buf = d on the first step, m*buf + d after; w -= lr*(d + m*buf).
    let (lr, m, wd) = (0.1, 0.9, 5e-4);
    let grads = [[0.1f64, 0.2, -0.3], [-0.05, 0.4, 0.0]];
    let (mut w, mut buf) = ([0.5f64, -1.0, 2.0], [0.0f64; 3]);
    let (mut expect_w, mut expect_buf) = (w, [0.0f64; 3]);
    for (step, g) in grads.iter().enumerate() {
        let mut g_in = *g;
        sgd(&mut w, &mut g_in, &mut buf, lr, m, wd, true);
        for i in 0..3 {
            let d = g[i] + wd * expect_w[i];
            expect_buf[i] = if step == 0 { d } else { m * expect_buf[i] + d };
            expect_w[i] -= lr * (d + m * expect_buf[i]);
            assert!((w[i] - expect_w[i]).abs() < 1e-15, "step {step} element {i}: {} vs {}", w[i], expect_w[i]);
        }
    }
}

#[test]
fn clipping_scales_to_the_max_norm() {
    let mut g = vec![3.0f64, 4.0];
    let ss = sum_squares(&g);
    assert_eq!(ss, 25.0);
    clip_by_norm(&mut g, ss, 1.0);
    let norm = (g[0] * g[0] + g[1] * g[1]).sqrt();
    assert!((norm - 5.0 / (5.0 + 1e-6)).abs() < 1e-12);
    let mut small = vec![0.3f64, 0.4];
    clip_by_norm(&mut small, 0.25, 1.0);
    assert_eq!(small, vec![0.3, 0.4]);
}

/// Loss scaling's kernels on the CPU device, in a step's order (unscale, SGD with the skip flag,
/// the update): an overflowing step leaves parameters and momentum as they were and halves the
/// scale; finite steps update with the unscaled gradients and, at the growth interval, double it.
#[test]
fn loss_scaling_skips_halves_and_grows_on_the_cpu_device() {
    use fear::engine::kernel::{Kernel, Loc, Space};
    use fear::engine::loss_scale::{self, LossScaleState, LossScaling};
    use fear::engine::{Cpu, Device, MemoryLayout};

    let n = 5;
    let rules = LossScaling { initial: 1024.0, growth_interval: 2, floor: 1.0 / 1024.0, max_skips_in_a_row: 8 };
    let cpu = Cpu;
    let layout = MemoryLayout { params: n, state: 2 + loss_scale::SLOTS, work: 0, half: 0, labels: 0 };
    let mut mem = <Cpu as Device<f32>>::alloc(&cpu, &layout).unwrap();
    let (w, g, buf) = (Loc::new(Space::Params, 0, n), Loc::new(Space::ParamGrads, 0, n), Loc::new(Space::Momentum, 0, n));
    let (lr, loss, state) = (Loc::new(Space::State, 0, 1), Loc::new(Space::State, 1, 1), Loc::new(Space::State, 2, loss_scale::SLOTS));
    let skip = Some(Loc::new(Space::State, 2 + loss_scale::FOUND_INF, 1));
    let w0 = [1.0f32, -2.0, 0.5, 3.0, 0.25];
    cpu.write(&mut mem, w, &w0).unwrap();
    cpu.write(&mut mem, lr, &[0.1]).unwrap();
    cpu.write(&mut mem, loss, &[2.5]).unwrap();
    cpu.write(&mut mem, state, &rules.initial_slots::<f32>()).unwrap();
    let kernels: Vec<Kernel> = vec![
        OptimKernel::UnscaleGrads { grads: g, state }.into(),
        OptimKernel::Sgd { w, g, buf, lr, momentum: 0.9, weight_decay: 5e-4, nesterov: true, skip }.into(),
        OptimKernel::UpdateLossScale { state, loss, rules }.into(),
    ];
    // One step with the true gradients `grads` scaled by the current scale (and `planted` at 3).
    let step = |mem: &mut <Cpu as Device<f32>>::Memory, grads: [f32; 5], planted: Option<f32>| -> LossScaleState {
        let s = LossScaleState::from_slots(&Device::<f32>::read(&cpu, mem, state).unwrap()).scale as f32;
        let mut scaled = grads.map(|v| v * s);
        if let Some(p) = planted {
            scaled[3] = p;
        }
        cpu.write(mem, g, &scaled).unwrap();
        for k in &kernels {
            Device::<f32>::launch(&cpu, mem, k).unwrap();
        }
        LossScaleState::from_slots(&Device::<f32>::read(&cpu, mem, state).unwrap())
    };
    let grads = [0.5f32, -0.25, 1e-3, 2.0, 0.0];
    let s = step(&mut mem, grads, Some(f32::INFINITY));
    assert_eq!((s.scale, s.skipped, s.skips_in_a_row, s.good_steps), (512.0, 1, 1, 0));
    assert_eq!(Device::<f32>::read(&cpu, &mem, w).unwrap(), w0.to_vec(), "a skipped step keeps the parameters");
    assert_eq!(Device::<f32>::read(&cpu, &mem, buf).unwrap(), vec![0.0; n], "and the momentum");
    let s = step(&mut mem, grads, None);
    assert_eq!((s.scale, s.skipped, s.skips_in_a_row, s.good_steps), (512.0, 1, 0, 1));
    // The update is SGD's on the unscaled gradients (unscaling by a power of two is exact).
    let (mut want_w, mut want_g, mut want_buf) = (w0, grads, [0.0f32; 5]);
    sgd(&mut want_w, &mut want_g, &mut want_buf, 0.1, 0.9, 5e-4, true);
    assert_eq!(Device::<f32>::read(&cpu, &mem, w).unwrap(), want_w.to_vec());
    assert_eq!(Device::<f32>::read(&cpu, &mem, buf).unwrap(), want_buf.to_vec());
    let s = step(&mut mem, grads, None);
    assert_eq!((s.scale, s.skipped, s.good_steps), (1024.0, 1, 0), "two finite steps double the scale");
    assert_eq!(Device::<f32>::read(&cpu, &mem, loss).unwrap(), vec![2.5], "the loss stands while the scaling holds");
    // A NaN skips too; the eighth skip in a row gives up with a NaN loss (scale 1024 / 2^8).
    for k in 1..=8 {
        let s = step(&mut mem, grads, Some(f32::NAN));
        let nan = Device::<f32>::read(&cpu, &mem, loss).unwrap()[0].is_nan();
        assert_eq!((nan, s.gave_up(&rules).is_some(), s.skips_in_a_row), (k == 8, k == 8, k), "skip {k}: {s:?}");
    }
    assert_eq!(LossScaleState::from_slots(&Device::<f32>::read(&cpu, &mem, state).unwrap()).scale, 4.0);
}
