// Optimiser kernels over the flat parameter buffers; mirror cpu.rs.


// out[0] = sum of squares of x, in double: one block, strided partials, a fixed tree.
extern "C" __global__ void __launch_bounds__(FEAR_SUMSQ_THREADS) fear_sum_squares(const float* __restrict__ x, float* __restrict__ out, int n) {
    __shared__ double part[FEAR_SUMSQ_THREADS];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += (double)x[i] * (double)x[i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int half = FEAR_SUMSQ_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = (float)part[0];
}

// PyTorch clip_grad_norm_: g *= max_norm / (sqrt(sum_sq) + 1e-6) when that is below 1.
// sum_sq is read from device memory, so the step needs no host round trip.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_clip_by_norm(float* __restrict__ g, const float* __restrict__ sum_sq, int n,
                                             double max_norm) {
    double coef = max_norm / (sqrt((double)sum_sq[0]) + 1e-6);
    if (coef >= 1.0) return;
    float c = (float)coef;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) g[i] *= c;
}

// PyTorch SGD (dampening 0): d = g + wd*w; buf = m*buf + d; d = d + m*buf (Nesterov) or buf;
// g = d; w -= lr*d. The learning rate is read from device memory (lr[0]), so a schedule changes
// it without recompiling or re-capturing anything. Nothing at all when `skip` is not null and
// skip[0] is not zero (loss scaling found a non-finite gradient this step).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_sgd(float* __restrict__ w, float* __restrict__ g, float* __restrict__ buf,
                                    const float* __restrict__ lr, int n, float momentum, float weight_decay,
                                    int nesterov, const float* __restrict__ skip) {
    if (skip && skip[0] != 0.0f) return;
    float rate = lr[0];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float wi = w[i];
        float d = g[i] + weight_decay * wi;
        float b = momentum * buf[i] + d;
        buf[i] = b;
        d = nesterov ? d + momentum * b : b;
        g[i] = d;
        w[i] = wi - rate * d;
    }
}

// Loss scaling (src/engine/loss_scale.rs, whose CPU code this mirrors line for line). `state`:
// scale S, 1/S, found-inf flag, good steps, skips in a row, skipped steps (f32 each).

// g *= 1/S (exact: S is a power of two); the flag set when any result is not finite (tested on
// the bits, which no compiler flag can assume away). Every thread finding one writes the same 1.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_unscale_grads(float* __restrict__ g, float* __restrict__ state, int n) {
    float inv = state[1];
    int bad = 0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float v = g[i] * inv;
        g[i] = v;
        bad |= (__float_as_int(v) & 0x7f800000) == 0x7f800000;
    }
    if (bad) state[2] = 1.0f;
}

// After the step: a skipped one halves S (and doubles 1/S) and counts a skip; a finite one counts
// a good step, and at `interval` of them doubles S (while 2S <= max_scale); the flag is reset.
// Below `min_scale` (the floor), or `max_skips` skips in a row, the scaling gives up: loss[0] = NaN.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_update_loss_scale(float* __restrict__ state, float* __restrict__ loss, int interval,
                                                                                  float min_scale, int max_skips, float max_scale) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    float s = state[0], inv = state[1];
    if (state[2] != 0.0f) {
        s = s * 0.5f;
        inv = inv * 2.0f;
        state[3] = 0.0f;
        state[4] = state[4] + 1.0f;
        state[5] = state[5] + 1.0f;
    } else {
        state[4] = 0.0f;
        float good = state[3] + 1.0f;
        if (good >= (float)interval) {
            if (s * 2.0f <= max_scale) {
                s = s * 2.0f;
                inv = inv * 0.5f;
            }
            good = 0.0f;
        }
        state[3] = good;
    }
    state[0] = s;
    state[1] = inv;
    state[2] = 0.0f;
    if (s < min_scale || state[4] >= (float)max_skips) loss[0] = __int_as_float(0x7fc00000);
}
