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

// dx[p, i] += dy[p] / hw.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_gap_backward(const float* __restrict__ dy, float* __restrict__ dx, int planes, int hw) {
    float inv = (float)(1.0 / (double)hw);
    int n = planes * hw;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        dx[i] += dy[i / hw] * inv;
    }
}
