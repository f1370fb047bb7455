// Average pools; mirror cpu.rs. Planes are n * c images of h x w.

// 3x3, stride 1, padding 1, count_include_pad = false: each output is the mean of the in-image
// part of its window (fear_avg_pool3_at, kernels/avg_pool3.cuh, which fear_node_sum also reads
// its pooled terms through).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool3_forward(const float* __restrict__ x, float* __restrict__ y,
                                                  int planes, int h, int w) {
    int n = planes * h * w;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += gridDim.x * blockDim.x) {
        y[o] = fear_avg_pool3_at(x, o, h, w);
    }
}

// dx += adjoint: each input gathers dy / count from the outputs whose window holds it.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool3_backward(const float* __restrict__ dy, float* __restrict__ dx,
                                                   int planes, int h, int w, int accumulate) {
    int hw = h * w;
    int n = planes * hw;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += gridDim.x * blockDim.x) {
        int i = (o % hw) / w, j = o % w;
        dx[o] = (accumulate ? dx[o] : 0.0f) + fear_avg_pool3_adjoint_at(dy + (o / hw) * hw, i, j, h, w);
    }
}

// 2x2, stride 2: y is [planes, h/2, w/2].
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool2_forward(const float* __restrict__ x, float* __restrict__ y,
                                                  int planes, int h, int w) {
    int oh = h / 2, ow = w / 2, ohw = oh * ow;
    int n = planes * ohw;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += gridDim.x * blockDim.x) {
        const float* plane = x + (long long)(o / ohw) * h * w;
        int i = (o % ohw) / ow, j = o % ow;
        const float* r0 = plane + 2 * i * w + 2 * j;
        const float* r1 = r0 + w;
        y[o] = (r0[0] + r0[1] + r1[0] + r1[1]) * 0.25f;
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_avg_pool2_backward(const float* __restrict__ dy, float* __restrict__ dx,
                                                   int planes, int h, int w, int accumulate) {
    int oh = h / 2, ow = w / 2, hw = h * w;
    int n = planes * hw;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += gridDim.x * blockDim.x) {
        int p = o / hw, i = (o % hw) / w, j = o % w;
        float base = accumulate ? dx[o] : 0.0f;
        dx[o] = i / 2 < oh && j / 2 < ow ? base + dy[(p * oh + i / 2) * ow + j / 2] * 0.25f : base;
    }
}
