//! Each planned [`Kernel`] as launches of the CUDA kernels in `kernels/*.cu`: which kernel, what
//! grid, and the arguments in the order of its C signature. Lengths and geometry come from the
//! kernel's fields; the addresses from its locations (already bounds-checked by the device).

use anyhow::{ensure, Result};

use super::gpu::GpuMemory;
use super::launch::{launch, Arg, Backend, Dims};
use crate::engine::cpu::ConvGeom;
use crate::engine::kernel::{Kernel, Loc};

/// Threads per block of the kernels that reduce within a block; each must match the kernel's
/// `#define` (the reductions assume exactly this many threads).
const WGRAD_THREADS: u32 = 256; // FEAR_WGRAD_THREADS, conv.cu
const BN_THREADS: u32 = 256; // FEAR_BN_THREADS, batchnorm.cu
const LOSS_THREADS: u32 = 256; // FEAR_LOSS_THREADS, loss.cu
const SUMSQ_THREADS: u32 = 1024; // FEAR_SUMSQ_THREADS, optim.cu
const PROBE_THREADS: u32 = 256; // FEAR_PROBE_THREADS, probe.cu
const FPROBE_THREADS: u32 = 256; // FEAR_FPROBE_THREADS, feature_probe.cu
/// The largest convolution kernel side conv.cu handles (FEAR_CONV_MAX_K).
const CONV_MAX_K: usize = 3;

fn len(n: usize) -> Result<Arg> {
    Arg::len(n)
}

/// Launches `name` over `n` elements (nothing when `n` is 0).
fn elementwise(b: &dyn Backend, name: &str, n: usize, args: &[Arg]) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    // SAFETY: every pointer argument is a bounds-checked location (see launch_kernel).
    unsafe { launch(b, name, Dims::elementwise(n), args) }
}

/// Launches `name` with one block of `threads` per item (nothing when there are no items).
fn per_item(b: &dyn Backend, name: &str, items: usize, threads: u32, args: &[Arg]) -> Result<()> {
    if items == 0 {
        return Ok(());
    }
    // SAFETY: as elementwise.
    unsafe { launch(b, name, Dims::per_item(items, threads), args) }
}

fn conv_args(g: &ConvGeom) -> Result<Vec<Arg>> {
    ensure!(g.k >= 1 && g.k <= CONV_MAX_K, "the CUDA convolutions take kernels up to {CONV_MAX_K}x{CONV_MAX_K}, not {}x{}", g.k, g.k);
    [g.n, g.c_in, g.h, g.w, g.c_out, g.k, g.stride, g.pad, g.out_h(), g.out_w()].into_iter().map(len).collect()
}

/// Runs one planned kernel: the GPU face of `run_on_cpu` in `engine/device.rs`.
pub fn launch_kernel(b: &dyn Backend, mem: &GpuMemory, kernel: &Kernel) -> Result<()> {
    let p = |l: Loc| -> Result<Arg> { Ok(Arg::Ptr(mem.address(l)?)) };
    let opt = |l: Option<Loc>| -> Result<Arg> { l.map_or(Ok(Arg::Ptr(0)), p) };
    use Kernel::*;
    match *kernel {
        ConvForward { g, x, w, y } => {
            let args = [vec![p(x)?, p(w)?, p(y)?], conv_args(&g)?].concat();
            elementwise(b, "fear_conv_forward", g.y_len(), &args)
        }
        ConvBackwardInput { g, dy, w, dx } => {
            let args = [vec![p(dy)?, p(w)?, p(dx)?], conv_args(&g)?].concat();
            elementwise(b, "fear_conv_backward_input", g.x_len(), &args)
        }
        ConvBackwardWeight { g, x, dy, dw } => {
            let args = [vec![p(x)?, p(dy)?, p(dw)?], conv_args(&g)?].concat();
            per_item(b, "fear_conv_backward_weight", g.c_out * g.c_in, WGRAD_THREADS, &args)
        }
        BnTrainForward { g, x, gamma, beta, running_mean, running_var, y, mean, invstd, eps, momentum } => {
            if g.n * g.hw == 0 {
                return Ok(());
            }
            let args = [
                p(x)?, p(gamma)?, p(beta)?, p(running_mean)?, p(running_var)?, p(y)?, p(mean)?, p(invstd)?,
                len(g.n)?, len(g.c)?, len(g.hw)?, Arg::F64(eps), Arg::F64(momentum),
            ];
            per_item(b, "fear_bn_train_forward", g.c, BN_THREADS, &args)
        }
        BnEvalForward { g, x, gamma, beta, running_mean, running_var, y, eps } => {
            let args = [p(x)?, p(gamma)?, p(beta)?, p(running_mean)?, p(running_var)?, p(y)?, len(g.n)?, len(g.c)?, len(g.hw)?, Arg::F64(eps)];
            elementwise(b, "fear_bn_eval_forward", g.len(), &args)
        }
        BnBackward { g, x, dy, gamma, mean, invstd, dx, dgamma, dbeta } => {
            if g.n * g.hw == 0 {
                return Ok(());
            }
            let args = [
                p(x)?, p(dy)?, p(gamma)?, p(mean)?, p(invstd)?, opt(dx)?, opt(dgamma)?, opt(dbeta)?,
                len(g.n)?, len(g.c)?, len(g.hw)?,
            ];
            per_item(b, "fear_bn_backward", g.c, BN_THREADS, &args)
        }
        Relu { x, y } => elementwise(b, "fear_relu_forward", y.len, &[p(x)?, p(y)?, len(y.len)?]),
        ReluBackward { y, dy, dx } => elementwise(b, "fear_relu_backward", dx.len, &[p(y)?, p(dy)?, p(dx)?, len(dx.len)?]),
        Add { a, b: bb, y } => elementwise(b, "fear_add", y.len, &[p(a)?, p(bb)?, p(y)?, len(y.len)?]),
        Accumulate { acc, x } => elementwise(b, "fear_accumulate", acc.len, &[p(acc)?, p(x)?, len(acc.len)?]),
        Zero { y } => elementwise(b, "fear_zero", y.len, &[p(y)?, len(y.len)?]),
        AvgPool3Forward { g, x, y } => {
            elementwise(b, "fear_avg_pool3_forward", y.len, &[p(x)?, p(y)?, len(g.n * g.c)?, len(g.h)?, len(g.w)?])
        }
        AvgPool3Backward { g, dy, dx } => {
            elementwise(b, "fear_avg_pool3_backward", dx.len, &[p(dy)?, p(dx)?, len(g.n * g.c)?, len(g.h)?, len(g.w)?])
        }
        AvgPool2Forward { g, x, y } => {
            elementwise(b, "fear_avg_pool2_forward", y.len, &[p(x)?, p(y)?, len(g.n * g.c)?, len(g.h)?, len(g.w)?])
        }
        AvgPool2Backward { g, dy, dx } => {
            elementwise(b, "fear_avg_pool2_backward", dx.len, &[p(dy)?, p(dx)?, len(g.n * g.c)?, len(g.h)?, len(g.w)?])
        }
        GapForward { n, c, hw, x, y } => elementwise(b, "fear_gap_forward", n * c, &[p(x)?, p(y)?, len(n * c)?, len(hw)?]),
        GapBackward { n, c, hw, dy, dx } => {
            elementwise(b, "fear_gap_backward", n * c * hw, &[p(dy)?, p(dx)?, len(n * c)?, len(hw)?])
        }
        LinearForward { g, x, w, b: bias, y } => {
            let args = [p(x)?, p(w)?, opt(bias)?, p(y)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?];
            elementwise(b, "fear_linear_forward", g.n * g.d_out, &args)
        }
        LinearBackward { g, x, w, dy, dx, dw, db } => {
            if let Some(dx) = dx {
                let args = [p(dy)?, p(w)?, p(dx)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?];
                elementwise(b, "fear_linear_backward_input", g.n * g.d_in, &args)?;
            }
            if let Some(dw) = dw {
                let args = [p(x)?, p(dy)?, p(dw)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?];
                elementwise(b, "fear_linear_backward_weight", g.d_out * g.d_in, &args)?;
            }
            if let Some(db) = db {
                elementwise(b, "fear_linear_backward_bias", g.d_out, &[p(dy)?, p(db)?, len(g.n)?, len(g.d_out)?])?;
            }
            Ok(())
        }
        SoftmaxXentForward { n, classes, logits, probs, loss, correct } => {
            let (labels, capacity) = mem.labels();
            ensure!(n <= capacity, "softmax over {n} rows but the label buffer holds {capacity}");
            let args = [p(logits)?, Arg::Ptr(labels), p(probs)?, p(loss)?, p(correct)?, len(n)?, len(classes)?];
            // SAFETY: as elementwise; the labels buffer holds n labels (checked above).
            unsafe { launch(b, "fear_softmax_xent_forward", Dims::per_item(1, LOSS_THREADS), &args) }
        }
        SoftmaxXentBackward { n, classes, probs, dlogits } => {
            let (labels, capacity) = mem.labels();
            ensure!(n <= capacity, "softmax over {n} rows but the label buffer holds {capacity}");
            let args = [p(probs)?, Arg::Ptr(labels), p(dlogits)?, len(n)?, len(classes)?];
            elementwise(b, "fear_softmax_xent_backward", n * classes, &args)
        }
        SumSquares { x, out } => {
            // SAFETY: as elementwise.
            unsafe { launch(b, "fear_sum_squares", Dims::per_item(1, SUMSQ_THREADS), &[p(x)?, p(out)?, len(x.len)?]) }
        }
        ClipByNorm { grads, sum_sq, max_norm } => {
            elementwise(b, "fear_clip_by_norm", grads.len, &[p(grads)?, p(sum_sq)?, len(grads.len)?, Arg::F64(max_norm)])
        }
        Sgd { w, g, buf, lr, momentum, weight_decay, nesterov } => {
            let args = [
                p(w)?, p(g)?, p(buf)?, p(lr)?, len(w.len)?, Arg::F32(momentum as f32), Arg::F32(weight_decay as f32),
                Arg::I32(nesterov as i32),
            ];
            elementwise(b, "fear_sgd", w.len, &args)
        }
        SumAll { x, out } => {
            // SAFETY: as elementwise.
            unsafe { launch(b, "fear_sum_all", Dims::per_item(1, PROBE_THREADS), &[p(x)?, p(out)?, len(x.len)?]) }
        }
        SumAllBackward { dx } => elementwise(b, "fear_sum_all_backward", dx.len, &[p(dx)?, len(dx.len)?]),
        ChannelFisher { n, c, hw, x, dy, out } => {
            per_item(b, "fear_channel_fisher", c, PROBE_THREADS, &[p(x)?, p(dy)?, p(out)?, len(n)?, len(c)?, len(hw)?])
        }
        BinaryCodeGram { n, d, x, k } => elementwise(b, "fear_binary_code_gram", n * n, &[p(x)?, p(k)?, len(n)?, len(d)?]),
        FeatureCovariance { n, c, hw, x, out } => {
            per_item(b, "fear_feature_covariance", c * c, FPROBE_THREADS, &[p(x)?, p(out)?, len(n)?, len(c)?, len(hw)?])
        }
        RandomSigns { seed, y } => elementwise(b, "fear_random_signs", y.len, &[p(y)?, Arg::U64(seed), len(y.len)?]),
        GradCrossCovariance { g, g_in, g_out, out } => {
            let dims = [g.n, g.c_in, g.h_in, g.w_in, g.c_out, g.h_out, g.w_out].into_iter().map(len).collect::<Result<Vec<_>>>()?;
            per_item(b, "fear_grad_cross_covariance", g.out_len(), FPROBE_THREADS, &[vec![p(g_in)?, p(g_out)?, p(out)?], dims].concat())
        }
        ActivationPatterns { n, d, x, out } => {
            ensure!(n <= 24, "activation patterns take at most 24 samples, not {n}");
            elementwise(b, "fear_activation_patterns", d, &[p(x)?, p(out)?, len(n)?, len(d)?])
        }
    }
}
