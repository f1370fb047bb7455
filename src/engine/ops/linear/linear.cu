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

// The classifier's forward on tensor cores: y = x w^T (+ b) with x and w rounded to TF32 or (bf16
// set) bf16, FP32 accumulate; mirrors cpu.rs with the operands rounded (LinearKernel::Forward's
// precision). One warp per 16 rows of y (grid-stride over row tiles), m16n8k8 tiles over 8
// columns at a time and 8 of d_in per step; rows, columns and k past the ends read as zeros.
// Builds without tensor cores for these kinds (sm_70) multiply the same rounded operands with
// FMAs, so every GPU rounds where the CPU face does.
#if defined(__CUDACC_EMULATED__) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
#define FEAR_LINEAR_MMA 1
#else
#define FEAR_LINEAR_MMA 0
#endif

template <bool BF16> __device__ __forceinline__ float fear_linear_round(float v) {
    if constexpr (BF16) return fear_bf16_to_f32(fear_f32_to_bf16(v));
    return fear_round_tf32(v);
}

template <bool BF16>
__device__ __forceinline__ void fear_linear_forward_tile(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                                                         float* __restrict__ y, int n, int d_in, int d_out, int r0, int lane) {
    auto a_at = [&](int row, int k) { return r0 + row < n && k < d_in ? x[(long long)(r0 + row) * d_in + k] : 0.0f; };
    for (int n0 = 0; n0 < d_out; n0 += 8) {
        auto b_at = [&](int k, int j) { return n0 + j < d_out && k < d_in ? w[(long long)(n0 + j) * d_in + k] : 0.0f; };
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int k0 = 0; k0 < d_in; k0 += 8) {
            float d[4];
#if FEAR_LINEAR_MMA
            if constexpr (BF16) {
                unsigned fa[2];
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    fa[r] = fear_pack_bf16(a_at(fear_m16n8k8_a16_row(lane, 2 * r), k0 + fear_m16n8k8_a16_col(lane, 2 * r)),
                                           a_at(fear_m16n8k8_a16_row(lane, 2 * r + 1), k0 + fear_m16n8k8_a16_col(lane, 2 * r + 1)));
                }
                unsigned fb = fear_pack_bf16(b_at(k0 + fear_m16n8k8_b16_row(lane, 0), fear_m16n8k8_b16_col(lane, 0)),
                                             b_at(k0 + fear_m16n8k8_b16_row(lane, 1), fear_m16n8k8_b16_col(lane, 1)));
                fear_mma_bf16_m16n8k8(d, fa, fb, acc);
            } else {
                unsigned fa[4], fb[2];
#pragma unroll
                for (int i = 0; i < 4; ++i) fa[i] = (unsigned)__float_as_int(fear_round_tf32(a_at(fear_m16n8k8_a32_row(lane, i), k0 + fear_m16n8k8_a32_col(lane, i))));
#pragma unroll
                for (int i = 0; i < 2; ++i) fb[i] = (unsigned)__float_as_int(fear_round_tf32(b_at(k0 + fear_m16n8k8_b32_row(lane, i), fear_m16n8k8_b32_col(lane, i))));
                fear_mma_tf32_m16n8k8(d, fa, fb, acc);
            }
#else
            // Lane's four outputs, each a dot product of rounded operands over this k step.
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                int row = r0 + fear_m16n8k8_c_row(lane, i), col = n0 + fear_m16n8k8_c_col(lane, i);
                float s = acc[i];
                if (row < n && col < d_out) {
                    const float* xr = x + (long long)row * d_in;
                    const float* wr = w + (long long)col * d_in;
                    for (int k = k0; k < min(k0 + 8, d_in); ++k) s += fear_linear_round<BF16>(xr[k]) * fear_linear_round<BF16>(wr[k]);
                }
                d[i] = s;
            }
#endif
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[i] = d[i];
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            int row = r0 + fear_m16n8k8_c_row(lane, i), col = n0 + fear_m16n8k8_c_col(lane, i);
            if (row < n && col < d_out) y[(long long)row * d_out + col] = b ? acc[i] + b[col] : acc[i];
        }
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_linear_forward_tensor(const float* __restrict__ x, const float* __restrict__ w,
                                                                                        const float* __restrict__ b, float* __restrict__ y, int n,
                                                                                        int d_in, int d_out, int bf16) {
    for (int r0 = 16 * blockIdx.x; r0 < n; r0 += 16 * gridDim.x) {
        if (bf16) {
            fear_linear_forward_tile<true>(x, w, b, y, n, d_in, d_out, r0, threadIdx.x);
        } else {
            fear_linear_forward_tile<false>(x, w, b, y, n, d_in, d_out, r0, threadIdx.x);
        }
    }
}
