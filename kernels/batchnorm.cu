// Batch norm over [n, c, hw]; mirrors src/engine/cpu/batchnorm.rs. Statistics are summed in
// double, as the CPU op does; each reduction is one block per channel with a fixed tree, so
// results do not depend on scheduling.

#define FEAR_BN_THREADS 256

// Block-wide sum of one double per thread (blockDim.x == FEAR_BN_THREADS); every thread gets it.
__device__ double fear_block_sum(double v, double* scratch) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int half = FEAR_BN_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) scratch[threadIdx.x] += scratch[threadIdx.x + half];
        __syncthreads();
    }
    double total = scratch[0];
    __syncthreads();
    return total;
}

// Train mode: biased batch variance for normalising, unbiased for the running variance
// (biased when there is a single value per channel). Writes mean and invstd for backward.
extern "C" __global__ void fear_bn_train_forward(const float* __restrict__ x, const float* __restrict__ gamma,
                                                 const float* __restrict__ beta, float* __restrict__ running_mean,
                                                 float* __restrict__ running_var, float* __restrict__ y,
                                                 float* __restrict__ mean, float* __restrict__ invstd,
                                                 int n, int c, int hw, double eps, double momentum) {
    __shared__ double scratch[FEAR_BN_THREADS];
    int m = n * hw;
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double s = 0.0;
        for (int p = threadIdx.x; p < m; p += blockDim.x) s += (double)x[((long long)(p / hw) * c + ch) * hw + p % hw];
        double mu = fear_block_sum(s, scratch) / (double)m;
        double q = 0.0;
        for (int p = threadIdx.x; p < m; p += blockDim.x) {
            double d = (double)x[((long long)(p / hw) * c + ch) * hw + p % hw] - mu;
            q += d * d;
        }
        double var = fear_block_sum(q, scratch) / (double)m;
        // The CPU op's affine form: ((x - mean_hi) - mean_lo) * scale + beta, in float.
        float mean_hi = (float)mu;
        float mean_lo = (float)(mu - (double)mean_hi);
        float scale = (float)((double)gamma[ch] / sqrt(var + eps));
        float b = beta[ch];
        for (int p = threadIdx.x; p < m; p += blockDim.x) {
            long long i = ((long long)(p / hw) * c + ch) * hw + p % hw;
            y[i] = ((x[i] - mean_hi) - mean_lo) * scale + b;
        }
        if (threadIdx.x == 0) {
            double unbias = m > 1 ? (double)m / (double)(m - 1) : 1.0;
            mean[ch] = (float)mu;
            invstd[ch] = (float)(1.0 / sqrt(var + eps));
            running_mean[ch] = (float)((1.0 - momentum) * (double)running_mean[ch] + momentum * mu);
            running_var[ch] = (float)((1.0 - momentum) * (double)running_var[ch] + momentum * var * unbias);
        }
    }
}

// Eval mode: normalise with the running statistics; one thread per element.
extern "C" __global__ void fear_bn_eval_forward(const float* __restrict__ x, const float* __restrict__ gamma,
                                                const float* __restrict__ beta, const float* __restrict__ running_mean,
                                                const float* __restrict__ running_var, float* __restrict__ y,
                                                int n, int c, int hw, double eps) {
    int total = n * c * hw;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int ch = (i / hw) % c;
        double mu = (double)running_mean[ch];
        float mean_hi = (float)mu;
        float mean_lo = (float)(mu - (double)mean_hi);
        float scale = (float)((double)gamma[ch] / sqrt((double)running_var[ch] + eps));
        y[i] = ((x[i] - mean_hi) - mean_lo) * scale + beta[ch];
    }
}

// Backward of train mode. Accumulates into dx, dgamma and dbeta, each skipped when null:
// dx += a*dy + b*(x - mean) + k with a = gamma*invstd, b = -a*invstd^2*sum(dy*(x-mean))/m,
// k = -a*sum(dy)/m; dgamma += invstd*sum(dy*(x-mean)); dbeta += sum(dy).
extern "C" __global__ void fear_bn_backward(const float* __restrict__ x, const float* __restrict__ dy,
                                            const float* __restrict__ gamma, const float* __restrict__ mean,
                                            const float* __restrict__ invstd, float* __restrict__ dx,
                                            float* __restrict__ dgamma, float* __restrict__ dbeta,
                                            int n, int c, int hw) {
    __shared__ double scratch[FEAR_BN_THREADS];
    int m = n * hw;
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        float mu = mean[ch];
        double sdy = 0.0, sdyx = 0.0;
        for (int p = threadIdx.x; p < m; p += blockDim.x) {
            long long i = ((long long)(p / hw) * c + ch) * hw + p % hw;
            float g = dy[i];
            sdy += (double)g;
            sdyx += (double)g * (double)(x[i] - mu);
        }
        sdy = fear_block_sum(sdy, scratch);
        sdyx = fear_block_sum(sdyx, scratch);
        double inv = (double)invstd[ch];
        if (dx) {
            double a = (double)gamma[ch] * inv;
            float af = (float)a;
            float bf = (float)(-a * inv * inv * sdyx / (double)m);
            float kf = (float)(-a * sdy / (double)m);
            for (int p = threadIdx.x; p < m; p += blockDim.x) {
                long long i = ((long long)(p / hw) * c + ch) * hw + p % hw;
                dx[i] += af * dy[i] + (bf * (x[i] - mu) + kf);
            }
        }
        if (threadIdx.x == 0) {
            if (dgamma) dgamma[ch] += (float)(sdyx * inv);
            if (dbeta) dbeta[ch] += (float)sdy;
        }
    }
}
