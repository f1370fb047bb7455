//! The loss as launches of loss.cu: the forward is one block (its rows are few and the loss and
//! count are sums over all of them), the backward one thread per logit.

use anyhow::{ensure, Result};

use super::LossKernel;
use crate::engine::cuda::launch::threads::FEAR_LOSS_THREADS;
use crate::engine::cuda::launch::{flag, len, Arg, OnGpu};

impl LossKernel {
    /// The CUDA kernel [`LossKernel::launch`] launches: `fear_` + the op's name.
    pub fn launch_names(&self) -> Vec<&'static str> {
        vec![match self {
            LossKernel::SoftmaxXentForward { .. } => "fear_softmax_xent_forward",
            LossKernel::SoftmaxXentBackward { .. } => "fear_softmax_xent_backward",
        }]
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        let (labels, capacity) = on.mem.labels();
        match *self {
            LossKernel::SoftmaxXentForward { n, classes, logits, probs, loss, correct } => {
                ensure!(n <= capacity, "softmax over {n} rows but the label buffer holds {capacity}");
                let args = [on.p(logits)?, Arg::Ptr(labels), on.p(probs)?, on.p(loss)?, on.p(correct)?, len(n)?, len(classes)?];
                // One block, whatever n: per_item with one item (the labels buffer holds n labels, checked above).
                on.per_item("fear_softmax_xent_forward", 1, FEAR_LOSS_THREADS, &args)
            }
            LossKernel::SoftmaxXentBackward { n, classes, probs, dlogits, accumulate, scale } => {
                ensure!(n <= capacity, "softmax over {n} rows but the label buffer holds {capacity}");
                let args = [on.p(probs)?, Arg::Ptr(labels), on.p(dlogits)?, len(n)?, len(classes)?, flag(accumulate), on.opt(scale)?];
                on.elementwise("fear_softmax_xent_backward", n * classes, &args)
            }
        }
    }
}
