//! fisher (README, "Zero-cost proxies"): per output channel c of each conv and linear layer,
//! F_c = 0.5 * mean over the batch of (sum over h, w of a * dL/da)^2, a being the layer's output;
//! as the zero-cost code broadcasts each channel's value over that channel's weights, F_c counts
//! C_in * k * k times (d_in times for a linear layer) in the sum.
//!
//! F_c is computed on the tape ([`crate::engine::ops::ProbeKernel::ChannelFisher`], planned with
//! `PlanOptions::fisher`) while the layer's output and its gradient are both at hand.

use anyhow::{anyhow, Result};

use crate::engine::{Device, Float, Session};

/// fisher after a train step of batch `n` planned with `fisher` on.
pub fn fisher<T: Float, D: Device<T>>(session: &Session<T, D>, n: usize) -> Result<f64> {
    let mut score = 0.0;
    for (name, per_channel) in session.read_fisher(n)? {
        let spec = session.graph().param_by_name(&name).ok_or_else(|| anyhow!("no parameter {name}"))?;
        let weights_per_channel: usize = spec.shape[1..].iter().product();
        score += per_channel.iter().map(|f| f.as_f64()).sum::<f64>() * weights_per_channel as f64;
    }
    Ok(score)
}
