// Elementwise ops and the global average pool; mirror cpu.rs.
// One thread per element, grid-stride loops so any grid size covers any length.
// Forward kernels overwrite their output; backward kernels accumulate into it.
// Tensors are stored as S (float, fear_bf16 or fear_f16 in the `_bf16` and `_f16` instantiations:
// kernels/storage.cuh);
// the arithmetic is f32 and each store rounds once.

template <typename S> __device__ __forceinline__ void fear_relu_body(const S* __restrict__ x, S* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float v = fear_load(x, i);
        fear_store(y, i, v > 0.0f ? v : 0.0f);
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_relu(const float* __restrict__ x, float* __restrict__ y, int n) { fear_relu_body(x, y, n); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_relu_bf16(const fear_bf16* __restrict__ x, fear_bf16* __restrict__ y, int n) { fear_relu_body(x, y, n); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_relu_f16(const fear_f16* __restrict__ x, fear_f16* __restrict__ y, int n) { fear_relu_body(x, y, n); }

// dx += dy where y > 0 (y is the ReLU output); without `accumulate`, dx = 0 + that (the bits a
// zeroed dx would hold, without reading it).
template <typename S>
__device__ __forceinline__ void fear_relu_backward_body(const S* __restrict__ y, const S* __restrict__ dy, S* __restrict__ dx, int n, int accumulate) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        fear_store(dx, i, (accumulate ? fear_load(dx, i) : 0.0f) + (fear_load(y, i) > 0.0f ? fear_load(dy, i) : 0.0f));
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_relu_backward(const float* __restrict__ y, const float* __restrict__ dy,
                                              float* __restrict__ dx, int n, int accumulate) { fear_relu_backward_body(y, dy, dx, n, accumulate); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_relu_backward_bf16(const fear_bf16* __restrict__ y, const fear_bf16* __restrict__ dy,
                                              fear_bf16* __restrict__ dx, int n, int accumulate) { fear_relu_backward_body(y, dy, dx, n, accumulate); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_relu_backward_f16(const fear_f16* __restrict__ y, const fear_f16* __restrict__ dy,
                                              fear_f16* __restrict__ dx, int n, int accumulate) { fear_relu_backward_body(y, dy, dx, n, accumulate); }

template <typename S> __device__ __forceinline__ void fear_add_body(const S* __restrict__ a, const S* __restrict__ b, S* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        fear_store(y, i, fear_load(a, i) + fear_load(b, i));
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_add(const float* __restrict__ a, const float* __restrict__ b,
                                    float* __restrict__ y, int n) { fear_add_body(a, b, y, n); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_add_bf16(const fear_bf16* __restrict__ a, const fear_bf16* __restrict__ b,
                                    fear_bf16* __restrict__ y, int n) { fear_add_body(a, b, y, n); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_add_f16(const fear_f16* __restrict__ a, const fear_f16* __restrict__ b,
                                    fear_f16* __restrict__ y, int n) { fear_add_body(a, b, y, n); }

// acc += x; without `accumulate`, acc = 0 + x.
template <typename S> __device__ __forceinline__ void fear_accumulate_body(S* __restrict__ acc, const S* __restrict__ x, int n, int accumulate) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        fear_store(acc, i, (accumulate ? fear_load(acc, i) : 0.0f) + fear_load(x, i));
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_accumulate(float* __restrict__ acc, const float* __restrict__ x, int n, int accumulate) {
    fear_accumulate_body(acc, x, n, accumulate);
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_accumulate_bf16(fear_bf16* __restrict__ acc, const fear_bf16* __restrict__ x, int n, int accumulate) {
    fear_accumulate_body(acc, x, n, accumulate);
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_accumulate_f16(fear_f16* __restrict__ acc, const fear_f16* __restrict__ x, int n, int accumulate) {
    fear_accumulate_body(acc, x, n, accumulate);
}

template <typename S> __device__ __forceinline__ void fear_zero_body(S* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        fear_store(y, i, 0.0f);
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_zero(float* __restrict__ y, int n) { fear_zero_body(y, n); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_zero_bf16(fear_bf16* __restrict__ y, int n) { fear_zero_body(y, n); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_zero_f16(fear_f16* __restrict__ y, int n) { fear_zero_body(y, n); }

// y[p] = mean of plane p of x (planes = n * c, each hw long), summed in double as the CPU op does.
// y (the classifier's features) is f32 whatever x is stored as.
template <typename S> __device__ __forceinline__ void fear_gap_forward_body(const S* __restrict__ x, float* __restrict__ y, int planes, int hw) {
    for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < planes; p += gridDim.x * blockDim.x) {
        const S* plane = x + (long long)p * hw;
        double s = 0.0;
        for (int i = 0; i < hw; ++i) s += (double)fear_load(plane, i);
        y[p] = (float)(s / (double)hw);
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_gap_forward(const float* __restrict__ x, float* __restrict__ y, int planes, int hw) {
    fear_gap_forward_body(x, y, planes, hw);
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_gap_forward_bf16(const fear_bf16* __restrict__ x, float* __restrict__ y, int planes, int hw) {
    fear_gap_forward_body(x, y, planes, hw);
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_gap_forward_f16(const fear_f16* __restrict__ x, float* __restrict__ y, int planes, int hw) {
    fear_gap_forward_body(x, y, planes, hw);
}

// dx[p, i] += dy[p] / hw (without `accumulate`, dx = 0 + that); dy is f32 (the features').
template <typename S> __device__ __forceinline__ void fear_gap_backward_body(const float* __restrict__ dy, S* __restrict__ dx, int planes, int hw, int accumulate) {
    float inv = (float)(1.0 / (double)hw);
    int n = planes * hw;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        fear_store(dx, i, (accumulate ? fear_load(dx, i) : 0.0f) + dy[i / hw] * inv);
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_gap_backward(const float* __restrict__ dy, float* __restrict__ dx, int planes, int hw, int accumulate) {
    fear_gap_backward_body(dy, dx, planes, hw, accumulate);
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_gap_backward_bf16(const float* __restrict__ dy, fear_bf16* __restrict__ dx, int planes, int hw, int accumulate) {
    fear_gap_backward_body(dy, dx, planes, hw, accumulate);
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_gap_backward_f16(const float* __restrict__ dy, fear_f16* __restrict__ dx, int planes, int hw, int accumulate) {
    fear_gap_backward_body(dy, dx, planes, hw, accumulate);
}

// One term of fear_node_sum: x[i], normalised by its batch norm's channel coefficients
// (mean_hi, mean_lo, scale, beta) when it has them (fear_bn_normalise: what fear_bn_apply
// writes, rounded as it would store it), or with `pool3` the 3x3 average pool of x at i
// (fear_avg_pool3_forward's sum, in its order), of the normalised x with coefficients (the pool
// of what fear_bn_apply would write).
template <typename S>
__device__ __forceinline__ float fear_sum_term(const S* __restrict__ x, const float* __restrict__ coef, int pool3, int i, int ch, int h, int w) {
    // A pooled term is the pool's output as fear_avg_pool3_forward would store it.
    if (pool3 && coef == nullptr) return fear_stored(x, fear_avg_pool3_at(x, i, h, w));
    if (pool3) return fear_stored(x, fear_avg_pool3_of(x, i, h, w, [&](float v) { return fear_stored(x, fear_bn_normalise(v, coef, ch)); }));
    float v = fear_load(x, i);
    if (coef == nullptr) return v;
    return fear_stored(x, fear_bn_normalise(v, coef, ch));
}

// y = t0 + t1 (+ t2 (+ t3)), added in that order (the bits of fear_add then fear_accumulate), each
// term normalised (or pooled: bit t of `pools`) as it is read: a cell node's sum of its edges with
// their batch norms and average pools applied here, not by passes of their own. Tensors
// [n, c, h, w]. Stored once: the unfused adds round after each term, this after the last (within
// the bf16 tolerance of each other; bit for bit in f32).
template <typename S>
__device__ __forceinline__ void fear_node_sum_body(const S* __restrict__ x0, const float* __restrict__ k0, const S* __restrict__ x1, const float* __restrict__ k1,
                                                   const S* __restrict__ x2, const float* __restrict__ k2, const S* __restrict__ x3, const float* __restrict__ k3,
                                                   int terms, int pools, S* __restrict__ y, int n, int c, int h, int w) {
    const int hw = h * w;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int ch = i / hw % c;
        float v = fear_sum_term(x0, k0, pools & 1, i, ch, h, w) + fear_sum_term(x1, k1, pools & 2, i, ch, h, w);
        if (terms > 2) v = v + fear_sum_term(x2, k2, pools & 4, i, ch, h, w);
        if (terms > 3) v = v + fear_sum_term(x3, k3, pools & 8, i, ch, h, w);
        fear_store(y, i, v);
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_node_sum(
    const float* __restrict__ x0, const float* __restrict__ k0, const float* __restrict__ x1, const float* __restrict__ k1,
    const float* __restrict__ x2, const float* __restrict__ k2, const float* __restrict__ x3, const float* __restrict__ k3,
    int terms, int pools, float* __restrict__ y, int n, int c, int h, int w) {
    fear_node_sum_body(x0, k0, x1, k1, x2, k2, x3, k3, terms, pools, y, n, c, h, w);
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_node_sum_bf16(
    const fear_bf16* __restrict__ x0, const float* __restrict__ k0, const fear_bf16* __restrict__ x1, const float* __restrict__ k1,
    const fear_bf16* __restrict__ x2, const float* __restrict__ k2, const fear_bf16* __restrict__ x3, const float* __restrict__ k3,
    int terms, int pools, fear_bf16* __restrict__ y, int n, int c, int h, int w) {
    fear_node_sum_body(x0, k0, x1, k1, x2, k2, x3, k3, terms, pools, y, n, c, h, w);
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_node_sum_f16(
    const fear_f16* __restrict__ x0, const float* __restrict__ k0, const fear_f16* __restrict__ x1, const float* __restrict__ k1,
    const fear_f16* __restrict__ x2, const float* __restrict__ k2, const fear_f16* __restrict__ x3, const float* __restrict__ k3,
    int terms, int pools, fear_f16* __restrict__ y, int n, int c, int h, int w) {
    fear_node_sum_body(x0, k0, x1, k1, x2, k2, x3, k3, terms, pools, y, n, c, h, w);
}
