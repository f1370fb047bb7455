// Fully connected layer y = x w^T + b, w is [d_out, d_in] (PyTorch nn.Linear); mirrors
// cpu.rs. One thread per output element; backward is three kernels so each
// gradient is launched only when the plan asks for it.

extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_linear_forward(const float* __restrict__ x, const float* __restrict__ w,
                                               const float* __restrict__ b, float* __restrict__ y,
                                               int n, int d_in, int d_out) {
    int total = n * d_out;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += gridDim.x * blockDim.x) {
        int row = o / d_out, j = o % d_out;
        const float* xr = x + (long long)row * d_in;
        const float* wr = w + (long long)j * d_in;
        float s = 0.0f;
        for (int i = 0; i < d_in; ++i) s += xr[i] * wr[i];
        y[o] = b ? s + b[j] : s;
    }
}

// dx += dy w (dx = 0 + that without `accumulate`).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_linear_backward_input(const float* __restrict__ dy, const float* __restrict__ w,
                                                      float* __restrict__ dx, int n, int d_in, int d_out, int accumulate) {
    int total = n * d_in;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += gridDim.x * blockDim.x) {
        int row = o / d_in, i = o % d_in;
        float s = 0.0f;
        for (int j = 0; j < d_out; ++j) s += dy[(long long)row * d_out + j] * w[(long long)j * d_in + i];
        dx[o] = (accumulate ? dx[o] : 0.0f) + s;
    }
}

// dw += dy^T x.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_linear_backward_weight(const float* __restrict__ x, const float* __restrict__ dy,
                                                       float* __restrict__ dw, int n, int d_in, int d_out) {
    int total = d_out * d_in;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += gridDim.x * blockDim.x) {
        int j = o / d_in, i = o % d_in;
        float s = 0.0f;
        for (int row = 0; row < n; ++row) s += dy[(long long)row * d_out + j] * x[(long long)row * d_in + i];
        dw[o] += s;
    }
}

// db += sum over rows of dy.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_linear_backward_bias(const float* __restrict__ dy, float* __restrict__ db,
                                                     int n, int d_out) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < d_out; j += gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int row = 0; row < n; ++row) s += dy[(long long)row * d_out + j];
        db[j] += s;
    }
}
