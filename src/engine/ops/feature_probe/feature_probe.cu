// AZ-NAS's and SWAP's probes; mirror cpu.rs. Reductions use
// FEAR_PROBE_THREADS (kernels/launch_bounds.cuh).

// The mean of channel ch of x [n, c, hw] over n * hw (one block).
__device__ double fear_fprobe_channel_mean(const float* x, int n, int c, int hw, int ch, double* scratch) {
    double s = 0.0;
    for (int i = threadIdx.x; i < n * hw; i += blockDim.x) s += (double)x[((long long)(i / hw) * c + ch) * hw + i % hw];
    s = fear_block_sum<FEAR_PROBE_THREADS>(s, scratch);
    return n * hw > 0 ? s / (double)(n * hw) : 0.0;
}

// out[a, b] = covariance of channels a and b of x over its n * hw positions: one block per pair.
extern "C" __global__ void __launch_bounds__(FEAR_PROBE_THREADS) fear_feature_covariance(const float* __restrict__ x, float* __restrict__ out, int n, int c, int hw) {
    __shared__ double scratch[FEAR_PROBE_THREADS];
    for (int pair = blockIdx.x; pair < c * c; pair += gridDim.x) {
        int a = pair / c, b = pair % c;
        double ma = fear_fprobe_channel_mean(x, n, c, hw, a, scratch);
        double mb = fear_fprobe_channel_mean(x, n, c, hw, b, scratch);
        double s = 0.0;
        for (int i = threadIdx.x; i < n * hw; i += blockDim.x) {
            long long base = (long long)(i / hw) * c;
            s += ((double)x[(base + a) * hw + i % hw] - ma) * ((double)x[(base + b) * hw + i % hw] - mb);
        }
        s = fear_block_sum<FEAR_PROBE_THREADS>(s, scratch);
        if (threadIdx.x == 0) out[pair] = n * hw > 0 ? (float)(s / (double)(n * hw)) : 0.0f;
    }
}

// The sign of a counter hash (SplitMix64's finaliser): fear_random_sign in feature_probe.rs.
__device__ float fear_fprobe_sign(unsigned long long seed, long long i) {
    unsigned long long z = seed ^ ((unsigned long long)i * 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (z >> 63) ? 1.0f : -1.0f;
}

// y[i] = the random sign of element i drawn from seed (overwrites).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_random_signs(float* __restrict__ y, unsigned long long seed, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = fear_fprobe_sign(seed, i);
}

// out[row, o] = mean over (b, y, x) of pixel_unshuffle(g_in, r)[b, row, y, x] * g_out[b, o, y, x]
// (one block per matrix element), then out[rows * co] = 1 when g_in equals g_out element by
// element and has its shape (the last block), else 0.
extern "C" __global__ void __launch_bounds__(FEAR_PROBE_THREADS) fear_grad_cross_covariance(const float* __restrict__ g_in, const float* __restrict__ g_out,
                                                      float* __restrict__ out, int n, int ci, int hi, int wi,
                                                      int co, int ho, int wo) {
    __shared__ double scratch[FEAR_PROBE_THREADS];
    int r = hi / ho;
    int rows = ci * r * r, cells = n * ho * wo;
    for (int item = blockIdx.x; item <= rows * co; item += gridDim.x) {
        if (item == rows * co) {
            double differ = 0.0;
            bool same_shape = r == 1 && ci == co && hi == ho && wi == wo;
            if (same_shape) {
                for (int i = threadIdx.x; i < n * ci * hi * wi; i += blockDim.x) differ += g_in[i] != g_out[i];
            }
            differ = fear_block_sum<FEAR_PROBE_THREADS>(differ, scratch);
            if (threadIdx.x == 0) out[item] = (same_shape && differ == 0.0) ? 1.0f : 0.0f;
            continue;
        }
        int row = item / co, o = item % co;
        int ch = row / (r * r), i = row / r % r, j = row % r;
        double s = 0.0;
        for (int k = threadIdx.x; k < cells; k += blockDim.x) {
            int b = k / (ho * wo), y = k / wo % ho, x = k % wo;
            s += (double)g_in[(((long long)b * ci + ch) * hi + y * r + i) * wi + x * r + j] * (double)g_out[(((long long)b * co + o) * ho + y) * wo + x];
        }
        s = fear_block_sum<FEAR_PROBE_THREADS>(s, scratch);
        if (threadIdx.x == 0) out[item] = cells > 0 ? (float)(s / (double)cells) : 0.0f;
    }
}

// out[u] = sum over samples s < n of 2^s * (x[s, u] > 0) (x: [n, d]; n <= 24).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_activation_patterns(const float* __restrict__ x, float* __restrict__ out, int n, int d) {
    for (int u = blockIdx.x * blockDim.x + threadIdx.x; u < d; u += gridDim.x * blockDim.x) {
        unsigned int code = 0;
        for (int s = 0; s < n; ++s) code |= (x[(long long)s * d + u] > 0.0f ? 1u : 0u) << s;
        out[u] = (float)code;
    }
}
