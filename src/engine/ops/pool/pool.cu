// Average pools; mirror cpu.rs. Planes are n * c images of h x w. Tensors are stored as S (float,
// fear_bf16 or fear_f16 in the `_bf16` and `_f16` instantiations: kernels/storage.cuh).

// 3x3, stride 1, padding 1, count_include_pad = false: each output is the mean of the in-image
// part of its window (fear_avg_pool3_at, kernels/avg_pool3.cuh, which fear_node_sum also reads
// its pooled terms through).
template <typename S> __device__ __forceinline__ void fear_avg_pool3_forward_body(const S* __restrict__ x, S* __restrict__ y, int planes, int h, int w) {
    int n = planes * h * w;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += gridDim.x * blockDim.x) {
        fear_store(y, o, fear_avg_pool3_at(x, o, h, w));
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool3_forward(const float* __restrict__ x, float* __restrict__ y,
                                                  int planes, int h, int w) { fear_avg_pool3_forward_body(x, y, planes, h, w); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool3_forward_bf16(const fear_bf16* __restrict__ x, fear_bf16* __restrict__ y,
                                                  int planes, int h, int w) { fear_avg_pool3_forward_body(x, y, planes, h, w); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool3_forward_f16(const fear_f16* __restrict__ x, fear_f16* __restrict__ y,
                                                  int planes, int h, int w) { fear_avg_pool3_forward_body(x, y, planes, h, w); }

// dx += adjoint: each input gathers dy / count from the outputs whose window holds it.
template <typename S>
__device__ __forceinline__ void fear_avg_pool3_backward_body(const S* __restrict__ dy, S* __restrict__ dx, int planes, int h, int w, int accumulate) {
    int hw = h * w;
    int n = planes * hw;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += gridDim.x * blockDim.x) {
        int i = (o % hw) / w, j = o % w;
        fear_store(dx, o, (accumulate ? fear_load(dx, o) : 0.0f) + fear_avg_pool3_adjoint_at(dy + (o / hw) * hw, i, j, h, w));
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool3_backward(const float* __restrict__ dy, float* __restrict__ dx,
                                                   int planes, int h, int w, int accumulate) { fear_avg_pool3_backward_body(dy, dx, planes, h, w, accumulate); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool3_backward_bf16(const fear_bf16* __restrict__ dy, fear_bf16* __restrict__ dx,
                                                   int planes, int h, int w, int accumulate) { fear_avg_pool3_backward_body(dy, dx, planes, h, w, accumulate); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool3_backward_f16(const fear_f16* __restrict__ dy, fear_f16* __restrict__ dx,
                                                   int planes, int h, int w, int accumulate) { fear_avg_pool3_backward_body(dy, dx, planes, h, w, accumulate); }

// 2x2, stride 2: y is [planes, h/2, w/2].
template <typename S> __device__ __forceinline__ void fear_avg_pool2_forward_body(const S* __restrict__ x, S* __restrict__ y, int planes, int h, int w) {
    int oh = h / 2, ow = w / 2, ohw = oh * ow;
    int n = planes * ohw;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += gridDim.x * blockDim.x) {
        const S* plane = x + (long long)(o / ohw) * h * w;
        int i = (o % ohw) / ow, j = o % ow;
        const S* r0 = plane + 2 * i * w + 2 * j;
        const S* r1 = r0 + w;
        fear_store(y, o, (fear_load(r0, 0) + fear_load(r0, 1) + fear_load(r1, 0) + fear_load(r1, 1)) * 0.25f);
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool2_forward(const float* __restrict__ x, float* __restrict__ y,
                                                  int planes, int h, int w) { fear_avg_pool2_forward_body(x, y, planes, h, w); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool2_forward_bf16(const fear_bf16* __restrict__ x, fear_bf16* __restrict__ y,
                                                  int planes, int h, int w) { fear_avg_pool2_forward_body(x, y, planes, h, w); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool2_forward_f16(const fear_f16* __restrict__ x, fear_f16* __restrict__ y,
                                                  int planes, int h, int w) { fear_avg_pool2_forward_body(x, y, planes, h, w); }

template <typename S>
__device__ __forceinline__ void fear_avg_pool2_backward_body(const S* __restrict__ dy, S* __restrict__ dx, int planes, int h, int w, int accumulate) {
    int oh = h / 2, ow = w / 2, hw = h * w;
    int n = planes * hw;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += gridDim.x * blockDim.x) {
        int p = o / hw, i = (o % hw) / w, j = o % w;
        float base = accumulate ? fear_load(dx, o) : 0.0f;
        fear_store(dx, o, i / 2 < oh && j / 2 < ow ? base + fear_load(dy, (p * oh + i / 2) * ow + j / 2) * 0.25f : base);
    }
}
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool2_backward(const float* __restrict__ dy, float* __restrict__ dx,
                                                   int planes, int h, int w, int accumulate) { fear_avg_pool2_backward_body(dy, dx, planes, h, w, accumulate); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool2_backward_bf16(const fear_bf16* __restrict__ dy, fear_bf16* __restrict__ dx,
                                                   int planes, int h, int w, int accumulate) { fear_avg_pool2_backward_body(dy, dx, planes, h, w, accumulate); }
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool2_backward_f16(const fear_f16* __restrict__ dy, fear_f16* __restrict__ dx,
                                                   int planes, int h, int w, int accumulate) { fear_avg_pool2_backward_body(dy, dx, planes, h, w, accumulate); }
