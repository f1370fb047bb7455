// Batch norm over [n, c, hw]; mirrors cpu.rs. Statistics are summed in
// double, as the CPU op does.
//
// The kernels reading or writing a tensor (x, y, dy, dx) are templates over its storage type S
// (kernels/storage.cuh), instantiated as `fear_bn_x` (float), `fear_bn_x_bf16` (bfloat16) and `fear_bn_x_f16` (IEEE half):
// every access goes through fear_load / fear_store, all arithmetic stays f32/f64, and a stored
// output is rounded once, where it is stored. Statistics, coefficients and partials stay f32/f64.
//
// Each channel is split over `splits` blocks (split s takes images [n*s/splits, n*(s+1)/splits)),
// so a launch has c*splits blocks instead of c (16-64 blocks would leave most of a GPU idle).
// A block reduces its share in a fixed tree and writes one partial; a finalize kernel merges a
// channel's partials in a fixed tree (the train statistics: one block per channel, as a
// convolution's epilogue may write a thousand partials per channel; the backward: one thread per
// channel over its few splits). No atomics and no
// last-block-reduces fences, so every run gives the same bits. The partials and the per-channel
// coefficients live in a scratch buffer of the step's memory (src/engine/cuda/gpu.rs); kernels
// run in stream order, so one buffer serves every batch norm of the step in turn.

// The first image of split s.
__device__ __forceinline__ int fear_bn_split_start(int n, int splits, int s) {
    return (int)((long long)n * s / splits);
}

// Calls f(i) for the index i of every element of channel ch in images [b0, b1), spread over the
// block with no division per element: thread t walks image rows t / span, t / span + rows, ...
// and, in each, positions t % span, t % span + span, ... (span = min(hw, block)).
template <typename F>
__device__ __forceinline__ void fear_bn_walk(int b0, int b1, int c, int ch, int hw, F f) {
    int span = hw < (int)blockDim.x ? hw : (int)blockDim.x;
    int rows = blockDim.x / span, row = threadIdx.x / span, col = threadIdx.x % span;
    if (row >= rows) return;
    for (int b = b0 + row; b < b1; b += rows) {
        long long base = ((long long)b * c + ch) * hw;
        for (int p = col; p < hw; p += span) f(base + p);
    }
}

// Train-mode statistics, pass 1: per (channel, split) block, the share's count, mean and sum of
// squared deviations from that mean (two passes over the share, the second from L1/L2), written
// to partial[3 * (ch * splits + s)]: the partials a convolution's epilogue writes for the batch
// norm that alone reads its output (conv.cu, fear_conv_bn_partials) have the same form, so one
// finalize kernel merges either.
template <typename S>
__device__ __forceinline__ void fear_bn_stats_body(const S* __restrict__ x, double* __restrict__ partial, int n, int c, int hw, int splits) {
    __shared__ double scratch[FEAR_BN_THREADS];
    for (int item = blockIdx.x; item < c * splits; item += gridDim.x) {
        int ch = item / splits, s = item % splits;
        int b0 = fear_bn_split_start(n, splits, s), b1 = fear_bn_split_start(n, splits, s + 1);
        double count = (double)(b1 - b0) * hw;
        double sum = 0.0;
        fear_bn_walk(b0, b1, c, ch, hw, [&](long long i) { sum += (double)fear_load(x, i); });
        double mu = fear_block_sum<FEAR_BN_THREADS>(sum, scratch) / (count > 0.0 ? count : 1.0);
        double q = 0.0;
        fear_bn_walk(b0, b1, c, ch, hw, [&](long long i) {
            double d = (double)fear_load(x, i) - mu;
            q += d * d;
        });
        q = fear_block_sum<FEAR_BN_THREADS>(q, scratch);
        if (threadIdx.x == 0) {
            partial[3 * item] = count;
            partial[3 * item + 1] = mu;
            partial[3 * item + 2] = q;
        }
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_stats(const float* __restrict__ x, double* __restrict__ partial, int n, int c, int hw, int splits) { fear_bn_stats_body(x, partial, n, c, hw, splits); }
extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_stats_bf16(const fear_bf16* __restrict__ x, double* __restrict__ partial, int n, int c, int hw, int splits) { fear_bn_stats_body(x, partial, n, c, hw, splits); }
extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_stats_f16(const fear_f16* __restrict__ x, double* __restrict__ partial, int n, int c, int hw, int splits) { fear_bn_stats_body(x, partial, n, c, hw, splits); }

// Train-mode statistics, pass 2: one block per channel merges the channel's `parts` partials
// (count, mean, squared deviations; at partial[3 * (ch * parts + p)]) as one two-pass sum would
// (the parallel-variance formula: sum_p count_p (mean_p - mean)^2 + sum_p q_p is the two-pass sum
// of squares, exactly in reals), each sum in a fixed tree; then writes mean and invstd (for
// backward), the running statistics (biased batch variance for normalising, unbiased for the
// running variance; biased when there is a single value per channel) and the channel's affine
// coefficients coef[4*ch..] = (mean_hi, mean_lo, scale, beta) for fear_bn_apply.
//
// A second batch norm of c2 channels (c2 = 0: none; same n and hw, its own outputs, eps and
// momentum) may be finalized in the same launch: its partials follow the first's (its channel j
// at partial[3 * ((c + j) * parts + p)]) and blocks [c, c + c2) do it, with the same code, so
// each batch norm gets the bits a launch of its own gives (two sibling convolutions' batch norms,
// whose partials one wider convolution wrote).
extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_train_finalize(
    const double* __restrict__ partial, const float* __restrict__ gamma1, const float* __restrict__ beta1,
    float* __restrict__ running_mean1, float* __restrict__ running_var1, float* __restrict__ mean1,
    float* __restrict__ invstd1, float* __restrict__ coef1, int n, int c, int hw, int parts, double eps1, double momentum1,
    const float* __restrict__ gamma2, const float* __restrict__ beta2, float* __restrict__ running_mean2,
    float* __restrict__ running_var2, float* __restrict__ mean2, float* __restrict__ invstd2, float* __restrict__ coef2,
    int c2, double eps2, double momentum2) {
    __shared__ double scratch[FEAR_BN_THREADS];
    for (int item = blockIdx.x; item < c + c2; item += gridDim.x) {
        // Which batch norm this block finalizes (the same for every thread of the block).
        bool second = item >= c;
        int ch = second ? item - c : item;
        const double* p = partial + 3LL * item * parts;
        double m = (double)n * hw, sum = 0.0, m2 = 0.0;
        for (int i = threadIdx.x; i < parts; i += blockDim.x) sum += p[3 * i] * p[3 * i + 1];
        double inv_m = 1.0 / m, mu = fear_block_sum<FEAR_BN_THREADS>(sum, scratch) * inv_m;  // one division: a second made ptxas spill on sm_70
        for (int i = threadIdx.x; i < parts; i += blockDim.x) {
            double d = p[3 * i + 1] - mu;
            m2 += p[3 * i + 2] + p[3 * i] * d * d;
        }
        m2 = fear_block_sum<FEAR_BN_THREADS>(m2, scratch);
        if (threadIdx.x != 0) continue;
        float* coef = second ? coef2 : coef1;
        float* mean = second ? mean2 : mean1;
        float* invstd = second ? invstd2 : invstd1;
        float* running_mean = second ? running_mean2 : running_mean1;
        float* running_var = second ? running_var2 : running_var1;
        double momentum = second ? momentum2 : momentum1;
        double var = m2 * inv_m, inv = 1.0 / sqrt(var + (second ? eps2 : eps1));
        // The CPU op's affine form: ((x - mean_hi) - mean_lo) * scale + beta, in float.
        float mean_hi = (float)mu;
        coef[4 * ch] = mean_hi;
        coef[4 * ch + 1] = (float)(mu - (double)mean_hi);
        coef[4 * ch + 2] = (float)((double)(second ? gamma2 : gamma1)[ch] * inv);
        coef[4 * ch + 3] = (second ? beta2 : beta1)[ch];
        double unbias = m > 1.0 ? m / (m - 1.0) : 1.0;
        mean[ch] = (float)mu;
        invstd[ch] = (float)inv;
        running_mean[ch] = (float)((1.0 - momentum) * (double)running_mean[ch] + momentum * mu);
        running_var[ch] = (float)((1.0 - momentum) * (double)running_var[ch] + momentum * var * unbias);
    }
}

// Eval mode: the affine coefficients from the running statistics, once per channel (not a double
// divide and square root per element, which is slow on GPUs with little FP64).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_bn_eval_coefficients(
    const float* __restrict__ gamma, const float* __restrict__ beta, const float* __restrict__ running_mean,
    const float* __restrict__ running_var, float* __restrict__ coef, int c, double eps) {
    for (int ch = blockIdx.x * blockDim.x + threadIdx.x; ch < c; ch += gridDim.x * blockDim.x) {
        double mu = (double)running_mean[ch];
        float mean_hi = (float)mu;
        coef[4 * ch] = mean_hi;
        coef[4 * ch + 1] = (float)(mu - (double)mean_hi);
        coef[4 * ch + 2] = (float)((double)gamma[ch] / sqrt((double)running_var[ch] + eps));
        coef[4 * ch + 3] = beta[ch];
    }
}

// y = ((x - mean_hi) - mean_lo) * scale + beta with coef[4*ch..] = (mean_hi, mean_lo, scale, beta);
// the same (channel, split) blocks as fear_bn_stats.
template <typename S>
__device__ __forceinline__ void fear_bn_apply_body(const S* __restrict__ x, const float* __restrict__ coef, S* __restrict__ y, int n, int c, int hw, int splits) {
    for (int item = blockIdx.x; item < c * splits; item += gridDim.x) {
        int ch = item / splits, s = item % splits;
        fear_bn_walk(fear_bn_split_start(n, splits, s), fear_bn_split_start(n, splits, s + 1), c, ch, hw,
                     [&](long long i) { fear_store(y, i, fear_bn_normalise(fear_load(x, i), coef, ch)); });
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_apply(const float* __restrict__ x, const float* __restrict__ coef, float* __restrict__ y, int n, int c, int hw, int splits) { fear_bn_apply_body(x, coef, y, n, c, hw, splits); }
extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_apply_bf16(const fear_bf16* __restrict__ x, const float* __restrict__ coef, fear_bf16* __restrict__ y, int n, int c, int hw, int splits) { fear_bn_apply_body(x, coef, y, n, c, hw, splits); }
extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_apply_f16(const fear_f16* __restrict__ x, const float* __restrict__ coef, fear_f16* __restrict__ y, int n, int c, int hw, int splits) { fear_bn_apply_body(x, coef, y, n, c, hw, splits); }

// Backward of train mode, pass 1: per (channel, split) block, sum(dy) and sum(dy * (x - mean))
// over the share, to partial[2 * (ch * splits + s)].
//
// A second batch norm (c2 channels in splits2 splits; c2 = 0: none; same n and hw) may be summed
// in the same launch (the two batch norms after sibling convolutions): its blocks follow the
// first's, c * splits of them, and so do its partials, each block writing partial[2 * block].
template <typename S>
__device__ __forceinline__ void fear_bn_backward_stats_body(const S* __restrict__ x1, const S* __restrict__ dy1, const float* __restrict__ mean1,
                                                            double* __restrict__ partial, int n, int c1, int hw, int splits1,
                                                            const S* __restrict__ x2, const S* __restrict__ dy2,
                                                            const float* __restrict__ mean2, int c2, int splits2) {
    __shared__ double scratch[FEAR_BN_THREADS];
    int items1 = c1 * splits1;
    for (int item = blockIdx.x; item < items1 + c2 * splits2; item += gridDim.x) {
        // Which batch norm this block sums (the same for every thread of the block).
        bool second = item >= items1;
        int local = second ? item - items1 : item, splits = second ? splits2 : splits1, c = second ? c2 : c1;
        const S* x = second ? x2 : x1;
        const S* dy = second ? dy2 : dy1;
        int ch = local / splits, s = local % splits;
        float mu = (second ? mean2 : mean1)[ch];
        double sdy = 0.0, sdyx = 0.0;
        fear_bn_walk(fear_bn_split_start(n, splits, s), fear_bn_split_start(n, splits, s + 1), c, ch, hw, [&](long long i) {
            float g = fear_load(dy, i);
            sdy += (double)g;
            sdyx += (double)g * (double)(fear_load(x, i) - mu);
        });
        sdy = fear_block_sum<FEAR_BN_THREADS>(sdy, scratch);
        sdyx = fear_block_sum<FEAR_BN_THREADS>(sdyx, scratch);
        if (threadIdx.x == 0) {
            partial[2 * item] = sdy;
            partial[2 * item + 1] = sdyx;
        }
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_backward_stats(const float* __restrict__ x1, const float* __restrict__ dy1, const float* __restrict__ mean1, double* __restrict__ partial, int n, int c1, int hw, int splits1, const float* __restrict__ x2, const float* __restrict__ dy2, const float* __restrict__ mean2, int c2, int splits2) { fear_bn_backward_stats_body(x1, dy1, mean1, partial, n, c1, hw, splits1, x2, dy2, mean2, c2, splits2); }
extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_backward_stats_bf16(const fear_bf16* __restrict__ x1, const fear_bf16* __restrict__ dy1, const float* __restrict__ mean1, double* __restrict__ partial, int n, int c1, int hw, int splits1, const fear_bf16* __restrict__ x2, const fear_bf16* __restrict__ dy2, const float* __restrict__ mean2, int c2, int splits2) { fear_bn_backward_stats_body(x1, dy1, mean1, partial, n, c1, hw, splits1, x2, dy2, mean2, c2, splits2); }
extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_backward_stats_f16(const fear_f16* __restrict__ x1, const fear_f16* __restrict__ dy1, const float* __restrict__ mean1, double* __restrict__ partial, int n, int c1, int hw, int splits1, const fear_f16* __restrict__ x2, const fear_f16* __restrict__ dy2, const float* __restrict__ mean2, int c2, int splits2) { fear_bn_backward_stats_body(x1, dy1, mean1, partial, n, c1, hw, splits1, x2, dy2, mean2, c2, splits2); }

// Backward pass 2, one thread per channel: sums the partials in split order; dgamma += invstd *
// sum(dy*(x-mean)) and dbeta += sum(dy), each skipped when null; coef[4*ch..] = (a, b, k, mean)
// for dx += a*dy + b*(x - mean) + k, with a = gamma*invstd, b = -a*invstd^2*sum(dy*(x-mean))/m,
// k = -a*sum(dy)/m. A second batch norm's channels (c2 of them, c2 = 0: none; its partials after
// the first's, as pass 1 wrote them) follow the first's: threads [c1, c1 + c2).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_bn_backward_finalize(
    const double* __restrict__ partial, const float* __restrict__ gamma1, const float* __restrict__ mean1,
    const float* __restrict__ invstd1, float* __restrict__ dgamma1, float* __restrict__ dbeta1, float* __restrict__ coef1,
    int n, int c1, int hw, int splits1, const float* __restrict__ gamma2, const float* __restrict__ mean2,
    const float* __restrict__ invstd2, float* __restrict__ dgamma2, float* __restrict__ dbeta2, float* __restrict__ coef2,
    int c2, int splits2) {
    for (int item = blockIdx.x * blockDim.x + threadIdx.x; item < c1 + c2; item += gridDim.x * blockDim.x) {
        bool second = item >= c1;
        int ch = second ? item - c1 : item, splits = second ? splits2 : splits1;
        const double* p = partial + 2LL * (second ? c1 * splits1 + ch * splits2 : ch * splits1);
        double sdy = 0.0, sdyx = 0.0;
        for (int s = 0; s < splits; ++s) {
            sdy += p[2 * s];
            sdyx += p[2 * s + 1];
        }
        float* coef = second ? coef2 : coef1;
        float* dgamma = second ? dgamma2 : dgamma1;
        float* dbeta = second ? dbeta2 : dbeta1;
        double m = (double)n * hw, inv = (double)(second ? invstd2 : invstd1)[ch], a = (double)(second ? gamma2 : gamma1)[ch] * inv;
        coef[4 * ch] = (float)a;
        coef[4 * ch + 1] = (float)(-a * inv * inv * sdyx / m);
        coef[4 * ch + 2] = (float)(-a * sdy / m);
        coef[4 * ch + 3] = (second ? mean2 : mean1)[ch];
        if (dgamma) dgamma[ch] += (float)(sdyx * inv);
        if (dbeta) dbeta[ch] += (float)sdy;
    }
}

// Backward pass 3: dx += a*dy + (b*(x - mean) + k), the same (channel, split) blocks as pass 1;
// without `accumulate`, dx = 0 + that. Accumulating into a stored dx reads it as stored (a
// bfloat16), adds in f32 and rounds once at the store, as the CPU reference does.
template <typename S>
__device__ __forceinline__ void fear_bn_backward_apply_body(const S* __restrict__ x, const S* __restrict__ dy, const float* __restrict__ coef,
                                                            S* __restrict__ dx, int n, int c, int hw, int splits, int accumulate) {
    for (int item = blockIdx.x; item < c * splits; item += gridDim.x) {
        int ch = item / splits, s = item % splits;
        float a = coef[4 * ch], b = coef[4 * ch + 1], k = coef[4 * ch + 2], mu = coef[4 * ch + 3];
        fear_bn_walk(fear_bn_split_start(n, splits, s), fear_bn_split_start(n, splits, s + 1), c, ch, hw,
                     [&](long long i) { fear_store(dx, i, (accumulate ? fear_load(dx, i) : 0.0f) + (a * fear_load(dy, i) + (b * (fear_load(x, i) - mu) + k))); });
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_backward_apply(const float* __restrict__ x, const float* __restrict__ dy, const float* __restrict__ coef, float* __restrict__ dx, int n, int c, int hw, int splits, int accumulate) { fear_bn_backward_apply_body(x, dy, coef, dx, n, c, hw, splits, accumulate); }
extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_backward_apply_bf16(const fear_bf16* __restrict__ x, const fear_bf16* __restrict__ dy, const float* __restrict__ coef, fear_bf16* __restrict__ dx, int n, int c, int hw, int splits, int accumulate) { fear_bn_backward_apply_body(x, dy, coef, dx, n, c, hw, splits, accumulate); }
extern "C" __global__ void __launch_bounds__(FEAR_BN_THREADS) fear_bn_backward_apply_f16(const fear_f16* __restrict__ x, const fear_f16* __restrict__ dy, const float* __restrict__ coef, fear_f16* __restrict__ dx, int n, int c, int hw, int splits, int accumulate) { fear_bn_backward_apply_body(x, dy, coef, dx, n, c, hw, splits, accumulate); }
