// Ops of the zero-cost proxies (README, "Zero-cost proxies"); mirror cpu.rs.

// out[0] = the sum of every element of x, in double (one block).
extern "C" __global__ void __launch_bounds__(FEAR_PROBE_THREADS) fear_sum_all(const float* __restrict__ x, float* __restrict__ out, int n) {
    __shared__ double scratch[FEAR_PROBE_THREADS];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += (double)x[i];
    s = fear_block_sum<FEAR_PROBE_THREADS>(s, scratch);
    if (threadIdx.x == 0) out[0] = (float)s;
}

// dx += 1: the gradient of fear_sum_all.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_sum_all_backward(float* __restrict__ dx, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) dx[i] += 1.0f;
}

// out[c] = 0.5 * mean over the batch of (sum over hw of x * dy)^2: one block per channel, each
// thread taking samples tid, tid + blockDim, ... (overwrites out).
extern "C" __global__ void __launch_bounds__(FEAR_PROBE_THREADS) fear_channel_fisher(const float* __restrict__ x, const float* __restrict__ dy,
                                               float* __restrict__ out, int n, int c, int hw) {
    __shared__ double scratch[FEAR_PROBE_THREADS];
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double acc = 0.0;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            long long at = ((long long)i * c + ch) * hw;
            double g = 0.0;
            for (int p = 0; p < hw; ++p) g += (double)x[at + p] * (double)dy[at + p];
            acc += g * g;
        }
        acc = fear_block_sum<FEAR_PROBE_THREADS>(acc, scratch);
        if (threadIdx.x == 0) out[ch] = n > 0 ? (float)(0.5 * acc / (double)n) : 0.0f;
    }
}

// k[i, j] += the number of units u on which samples i and j agree about x[., u] > 0 (x: [n, d]).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_binary_code_gram(const float* __restrict__ x, float* __restrict__ k, int n, int d) {
    int total = n * n;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += gridDim.x * blockDim.x) {
        const float* a = x + (long long)(o / n) * d;
        const float* b = x + (long long)(o % n) * d;
        int agree = 0;
        for (int u = 0; u < d; ++u) agree += (a[u] > 0.0f) == (b[u] > 0.0f);
        k[o] += (float)agree;
    }
}
