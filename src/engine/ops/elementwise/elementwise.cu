// Elementwise ops and the global average pool; mirror cpu.rs.
// One thread per element, grid-stride loops so any grid size covers any length.
// Forward kernels overwrite their output; backward kernels accumulate into it.

extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_relu(const float* __restrict__ x, float* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

// dx += dy where y > 0 (y is the ReLU output); without `accumulate`, dx = 0 + that (the bits a
// zeroed dx would hold, without reading it).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_relu_backward(const float* __restrict__ y, const float* __restrict__ dy,
                                              float* __restrict__ dx, int n, int accumulate) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        dx[i] = (accumulate ? dx[i] : 0.0f) + (y[i] > 0.0f ? dy[i] : 0.0f);
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_add(const float* __restrict__ a, const float* __restrict__ b,
                                    float* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        y[i] = a[i] + b[i];
    }
}

// acc += x; without `accumulate`, acc = 0 + x.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_accumulate(float* __restrict__ acc, const float* __restrict__ x, int n, int accumulate) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        acc[i] = (accumulate ? acc[i] : 0.0f) + x[i];
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_zero(float* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        y[i] = 0.0f;
    }
}

// y[p] = mean of plane p of x (planes = n * c, each hw long), summed in double as the CPU op does.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_gap_forward(const float* __restrict__ x, float* __restrict__ y, int planes, int hw) {
    for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < planes; p += gridDim.x * blockDim.x) {
        const float* plane = x + (long long)p * hw;
        double s = 0.0;
        for (int i = 0; i < hw; ++i) s += (double)plane[i];
        y[p] = (float)(s / (double)hw);
    }
}

// dx[p, i] += dy[p] / hw (without `accumulate`, dx = 0 + that).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_gap_backward(const float* __restrict__ dy, float* __restrict__ dx, int planes, int hw, int accumulate) {
    float inv = (float)(1.0 / (double)hw);
    int n = planes * hw;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        dx[i] = (accumulate ? dx[i] : 0.0f) + dy[i / hw] * inv;
    }
}

// One term of fear_node_sum: x[i], normalised by its batch norm's channel coefficients
// (mean_hi, mean_lo, scale, beta) when it has them (fear_bn_normalise: what fear_bn_apply
// writes), or with `pool3` the 3x3 average pool of x at i (fear_avg_pool3_forward's sum, in its
// order), of the normalised x with coefficients (the pool of what fear_bn_apply would write).
__device__ __forceinline__ float fear_sum_term(const float* __restrict__ x, const float* __restrict__ coef, int pool3, int i,
                                               int ch, int h, int w) {
    if (pool3 && coef == nullptr) return fear_avg_pool3_at(x, i, h, w);
    if (pool3) return fear_avg_pool3_of(x, i, h, w, [&](float v) { return fear_bn_normalise(v, coef, ch); });
    float v = x[i];
    if (coef == nullptr) return v;
    return fear_bn_normalise(v, coef, ch);
}

// y = t0 + t1 (+ t2 (+ t3)), added in that order (the bits of fear_add then fear_accumulate), each
// term normalised (or pooled: bit t of `pools`) as it is read: a cell node's sum of its edges with
// their batch norms and average pools applied here, not by passes of their own. Tensors
// [n, c, h, w].
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_node_sum(
    const float* __restrict__ x0, const float* __restrict__ k0, const float* __restrict__ x1, const float* __restrict__ k1,
    const float* __restrict__ x2, const float* __restrict__ k2, const float* __restrict__ x3, const float* __restrict__ k3,
    int terms, int pools, float* __restrict__ y, int n, int c, int h, int w) {
    const int hw = h * w;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int ch = i / hw % c;
        float v = fear_sum_term(x0, k0, pools & 1, i, ch, h, w) + fear_sum_term(x1, k1, pools & 2, i, ch, h, w);
        if (terms > 2) v = v + fear_sum_term(x2, k2, pools & 4, i, ch, h, w);
        if (terms > 3) v = v + fear_sum_term(x3, k3, pools & 8, i, ch, h, w);
        y[i] = v;
    }
}
