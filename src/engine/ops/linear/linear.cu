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

// The classifier's products on tensor cores: y = x w^T (+ b), dx (+)= dy w and dw += dy^T x,
// with both operands of each product rounded to TF32 or (bf16 set) bf16 and FP32 accumulate;
// mirrors cpu.rs with the operands rounded (LinearKernel's precision). The bias gradient is a
// plain sum and stays fear_linear_backward_bias. Each kernel is C = A B over tiles of C: one warp
// per m16n8 tile (grid-stride over the tiles), 8 of K per mma; rows, columns and k past the ends
// read as zeros. Builds without tensor cores for these kinds (sm_70) multiply the same rounded
// operands with FMAs, so every GPU rounds where the CPU face does.
#if defined(__CUDACC_EMULATED__) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
#define FEAR_LINEAR_MMA 1
#else
#define FEAR_LINEAR_MMA 0
#endif

template <bool BF16> __device__ __forceinline__ float fear_linear_round(float v) {
    if constexpr (BF16) return fear_bf16_to_f32(fear_f32_to_bf16(v));
    return fear_round_tf32(v);
}

// The lane's four elements (fear_m16n8k8_c_row/col) of the 16 x 8 tile of A B whose A rows are
// a(row, k) and B columns b(k, col) (row < 16, col < 8; zero outside the matrices), over k < k_len.
template <bool BF16, typename A, typename B>
__device__ __forceinline__ void fear_linear_mma_tile(float (&acc)[4], A a, B b, int k_len, int lane) {
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[i] = 0.0f;
    for (int k0 = 0; k0 < k_len; k0 += 8) {
        float d[4];
#if FEAR_LINEAR_MMA
        if constexpr (BF16) {
            unsigned fa[2];
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                fa[r] = fear_pack_bf16(a(fear_m16n8k8_a16_row(lane, 2 * r), k0 + fear_m16n8k8_a16_col(lane, 2 * r)),
                                       a(fear_m16n8k8_a16_row(lane, 2 * r + 1), k0 + fear_m16n8k8_a16_col(lane, 2 * r + 1)));
            }
            unsigned fb = fear_pack_bf16(b(k0 + fear_m16n8k8_b16_row(lane, 0), fear_m16n8k8_b16_col(lane, 0)),
                                         b(k0 + fear_m16n8k8_b16_row(lane, 1), fear_m16n8k8_b16_col(lane, 1)));
            fear_mma_bf16_m16n8k8(d, fa, fb, acc);
        } else {
            unsigned fa[4], fb[2];
#pragma unroll
            for (int i = 0; i < 4; ++i) fa[i] = (unsigned)__float_as_int(fear_round_tf32(a(fear_m16n8k8_a32_row(lane, i), k0 + fear_m16n8k8_a32_col(lane, i))));
#pragma unroll
            for (int i = 0; i < 2; ++i) fb[i] = (unsigned)__float_as_int(fear_round_tf32(b(k0 + fear_m16n8k8_b32_row(lane, i), fear_m16n8k8_b32_col(lane, i))));
            fear_mma_tf32_m16n8k8(d, fa, fb, acc);
        }
#else
        // Each of the lane's four outputs: a dot product of rounded operands over this k step.
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int row = fear_m16n8k8_c_row(lane, i), col = fear_m16n8k8_c_col(lane, i);
            float s = acc[i];
            for (int k = k0; k < min(k0 + 8, k_len); ++k) s += fear_linear_round<BF16>(a(row, k)) * fear_linear_round<BF16>(b(k, col));
            d[i] = s;
        }
#endif
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[i] = d[i];
    }
}

// Runs `tile(r0, c0, lane)` over the m16n8 tiles of an m x n result, one warp per tile.
template <typename Tile>
__device__ __forceinline__ void fear_linear_tiles(int m, int n, Tile tile) {
    const int tiles_n = (n + 7) / 8, tiles = ((m + 15) / 16) * tiles_n;
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) tile(16 * (t / tiles_n), 8 * (t % tiles_n), (int)threadIdx.x);
}

// Calls `store(row, col, v)` for the lane's elements of the tile at (r0, c0) that lie inside m x n.
template <typename Store>
__device__ __forceinline__ void fear_linear_store(const float (&acc)[4], int r0, int c0, int m, int n, int lane, Store store) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int row = r0 + fear_m16n8k8_c_row(lane, i), col = c0 + fear_m16n8k8_c_col(lane, i);
        if (row < m && col < n) store(row, col, acc[i]);
    }
}

// y [n, d_out] = x [n, d_in] w^T (+ b).
template <bool BF16>
__device__ __forceinline__ void fear_linear_forward_mma(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                                                        float* __restrict__ y, int n, int d_in, int d_out) {
    fear_linear_tiles(n, d_out, [&](int r0, int c0, int lane) {
        float acc[4];
        auto a = [&](int row, int k) { return r0 + row < n && k < d_in ? x[(long long)(r0 + row) * d_in + k] : 0.0f; };
        auto bw = [&](int k, int col) { return c0 + col < d_out && k < d_in ? w[(long long)(c0 + col) * d_in + k] : 0.0f; };
        fear_linear_mma_tile<BF16>(acc, a, bw, d_in, lane);
        fear_linear_store(acc, r0, c0, n, d_out, lane, [&](int row, int col, float v) { y[(long long)row * d_out + col] = b ? v + b[col] : v; });
    });
}

// dx [n, d_in] (+)= dy [n, d_out] w [d_out, d_in] (dx = 0 + that without `accumulate`).
template <bool BF16>
__device__ __forceinline__ void fear_linear_backward_input_mma(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx, int n,
                                                               int d_in, int d_out, int accumulate) {
    fear_linear_tiles(n, d_in, [&](int r0, int c0, int lane) {
        float acc[4];
        auto a = [&](int row, int k) { return r0 + row < n && k < d_out ? dy[(long long)(r0 + row) * d_out + k] : 0.0f; };
        auto bw = [&](int k, int col) { return c0 + col < d_in && k < d_out ? w[(long long)k * d_in + c0 + col] : 0.0f; };
        fear_linear_mma_tile<BF16>(acc, a, bw, d_out, lane);
        fear_linear_store(acc, r0, c0, n, d_in, lane, [&](int row, int col, float v) {
            float* at = dx + (long long)row * d_in + col;
            *at = (accumulate ? *at : 0.0f) + v;
        });
    });
}

// dw [d_out, d_in] += dy^T [d_out, n] x [n, d_in].
template <bool BF16>
__device__ __forceinline__ void fear_linear_backward_weight_mma(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw, int n,
                                                                int d_in, int d_out) {
    fear_linear_tiles(d_out, d_in, [&](int r0, int c0, int lane) {
        float acc[4];
        auto a = [&](int row, int k) { return r0 + row < d_out && k < n ? dy[(long long)k * d_out + r0 + row] : 0.0f; };
        auto bx = [&](int k, int col) { return c0 + col < d_in && k < n ? x[(long long)k * d_in + c0 + col] : 0.0f; };
        fear_linear_mma_tile<BF16>(acc, a, bx, n, lane);
        fear_linear_store(acc, r0, c0, d_out, d_in, lane, [&](int row, int col, float v) { dw[(long long)row * d_in + col] += v; });
    });
}

// The kernels: one warp per block; `bf16` picks the operands' rounding (else TF32).
extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_linear_forward_tensor(const float* __restrict__ x, const float* __restrict__ w,
                                                                                        const float* __restrict__ b, float* __restrict__ y, int n,
                                                                                        int d_in, int d_out, int bf16) {
    if (bf16) {
        fear_linear_forward_mma<true>(x, w, b, y, n, d_in, d_out);
    } else {
        fear_linear_forward_mma<false>(x, w, b, y, n, d_in, d_out);
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_linear_backward_input_tensor(const float* __restrict__ dy, const float* __restrict__ w,
                                                                                               float* __restrict__ dx, int n, int d_in, int d_out,
                                                                                               int accumulate, int bf16) {
    if (bf16) {
        fear_linear_backward_input_mma<true>(dy, w, dx, n, d_in, d_out, accumulate);
    } else {
        fear_linear_backward_input_mma<false>(dy, w, dx, n, d_in, d_out, accumulate);
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_linear_backward_weight_tensor(const float* __restrict__ x, const float* __restrict__ dy,
                                                                                                float* __restrict__ dw, int n, int d_in, int d_out,
                                                                                                int bf16) {
    if (bf16) {
        fear_linear_backward_weight_mma<true>(x, dy, dw, n, d_in, d_out);
    } else {
        fear_linear_backward_weight_mma<false>(x, dy, dw, n, d_in, d_out);
    }
}
