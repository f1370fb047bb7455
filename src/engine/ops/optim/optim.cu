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
// it without recompiling or re-capturing anything.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_sgd(float* __restrict__ w, float* __restrict__ g, float* __restrict__ buf,
                                    const float* __restrict__ lr, int n, float momentum, float weight_decay,
                                    int nesterov) {
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
