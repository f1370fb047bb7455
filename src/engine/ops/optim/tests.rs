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
