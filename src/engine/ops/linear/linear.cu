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
// with both operands of each product rounded to the product's type (TF32, bf16 or IEEE half) and
// FP32 accumulate; mirrors cpu.rs with the operands rounded (LinearKernel's precision). The bias
// gradient is a plain sum and stays fear_linear_backward_bias. Each kernel is C = A B over tiles
// of C: one warp per m16n8 tile (grid-stride over the tiles), 8 of K per step; rows, columns and
// k past the ends read as zeros. TF32 and BF16 run mma.sync.m16n8k8 (sm_80+); builds without it
// (sm_70) multiply the same rounded operands with FMAs, so every GPU rounds where the CPU face
// does. FP16 runs mma.sync.m8n8k4 (sm_70+): its four quadpairs take the tile's two 8-row halves
// at the step's two 4-wide k halves, and a shuffle adds the k halves.

// The product's operand type: the tensor-core kernels' last argument.
enum FearLinearProduct { FEAR_LINEAR_TF32 = 0, FEAR_LINEAR_BF16 = 1, FEAR_LINEAR_F16 = 2 };

template <int P> __device__ __forceinline__ float fear_linear_round(float v) {
    if constexpr (P == FEAR_LINEAR_BF16) return fear_bf16_to_f32(fear_f32_to_bf16(v));
    else if constexpr (P == FEAR_LINEAR_F16) return fear_f16_to_f32(fear_f32_to_f16(v));
    else return fear_round_tf32(v);
}

// The 16 x 8 tile of A B whose A rows are a(row, k) and B columns b(k, col) (row < 16, col < 8;
// zero outside the matrices), over k < k_len, on tensor cores: calls emit(row, col, v) once for
// each element of the tile, from one of the warp's lanes.
template <int P, typename A, typename B, typename Emit>
__device__ __forceinline__ void fear_linear_mma_tile(A a, B b, int k_len, int lane, Emit emit) {
    if constexpr (P == FEAR_LINEAR_F16) {
        // Quadpair q: rows 8 (q & 1) .. + 7, k 4 (q >> 1) .. + 3 of each step; thread th holds its
        // A row th and B column th.
        const int q = fear_m8n8k4_quadpair(lane), th = fear_m8n8k4_thread(lane), row = 8 * (q & 1) + th, kq = 4 * (q >> 1);
        float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (int k0 = 0; k0 < k_len; k0 += 8) {
            const int k = k0 + kq;
            const unsigned fa[2] = {fear_pack_f16(a(row, k), a(row, k + 1)), fear_pack_f16(a(row, k + 2), a(row, k + 3))};
            const unsigned fb[2] = {fear_pack_f16(b(k, th), b(k + 1, th)), fear_pack_f16(b(k + 2, th), b(k + 3, th))};
#if FEAR_HAS_MMA_M8N8K4
            fear_mma_f16_m8n8k4(acc, fa, fb, acc);
#else
            for (int i = 0; i < 8; ++i) acc[i] = fear_nan();
#endif
        }
        // The two k halves (quadpairs q and q ^ 2: lanes l and l ^ 8 hold the same elements).
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], 8);
        if (q < 2) {
#pragma unroll
            for (int i = 0; i < 8; ++i) emit(8 * q + fear_m8n8k4_c_row(lane, i), fear_m8n8k4_c_col(lane, i), acc[i]);
        }
        return;
    }
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int k0 = 0; k0 < k_len; k0 += 8) {
        float d[4];
#if FEAR_HAS_MMA_M16N8K8
        if constexpr (P == FEAR_LINEAR_BF16) {
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
            for (int k = k0; k < min(k0 + 8, k_len); ++k) s += fear_linear_round<P>(a(row, k)) * fear_linear_round<P>(b(k, col));
            d[i] = s;
        }
#endif
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[i] = d[i];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) emit(fear_m16n8k8_c_row(lane, i), fear_m16n8k8_c_col(lane, i), acc[i]);
}

// Runs the m16n8 tiles of an m x n result C = A B, one warp per tile: A's rows a(row, k) and B's
// columns b(k, col) of the whole matrices (zero outside them), and store(row, col, v) for each
// element of C.
template <int P, typename A, typename B, typename Store>
__device__ __forceinline__ void fear_linear_product(int m, int n, int k_len, A a, B b, Store store) {
    const int tiles_n = (n + 7) / 8, tiles = ((m + 15) / 16) * tiles_n, lane = (int)threadIdx.x;
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
        const int r0 = 16 * (t / tiles_n), c0 = 8 * (t % tiles_n);
        auto at = [&](int row, int k) { return r0 + row < m && k < k_len ? a(r0 + row, k) : 0.0f; };
        auto bt = [&](int k, int col) { return c0 + col < n && k < k_len ? b(k, c0 + col) : 0.0f; };
        fear_linear_mma_tile<P>(at, bt, k_len, lane, [&](int row, int col, float v) {
            if (r0 + row < m && c0 + col < n) store(r0 + row, c0 + col, v);
        });
    }
}

// y [n, d_out] = x [n, d_in] w^T (+ b).
template <int P>
__device__ __forceinline__ void fear_linear_forward_mma(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                                                        float* __restrict__ y, int n, int d_in, int d_out) {
    fear_linear_product<P>(
        n, d_out, d_in, [&](int row, int k) { return x[(long long)row * d_in + k]; }, [&](int k, int col) { return w[(long long)col * d_in + k]; },
        [&](int row, int col, float v) { y[(long long)row * d_out + col] = b ? v + b[col] : v; });
}

// dx [n, d_in] (+)= dy [n, d_out] w [d_out, d_in] (dx = 0 + that without `accumulate`).
template <int P>
__device__ __forceinline__ void fear_linear_backward_input_mma(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx, int n,
                                                               int d_in, int d_out, int accumulate) {
    fear_linear_product<P>(
        n, d_in, d_out, [&](int row, int k) { return dy[(long long)row * d_out + k]; }, [&](int k, int col) { return w[(long long)k * d_in + col]; },
        [&](int row, int col, float v) {
            float* at = dx + (long long)row * d_in + col;
            *at = (accumulate ? *at : 0.0f) + v;
        });
}

// dw [d_out, d_in] += dy^T [d_out, n] x [n, d_in].
template <int P>
__device__ __forceinline__ void fear_linear_backward_weight_mma(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw, int n,
                                                                int d_in, int d_out) {
    fear_linear_product<P>(
        d_out, d_in, n, [&](int row, int k) { return dy[(long long)k * d_out + row]; }, [&](int k, int col) { return x[(long long)k * d_in + col]; },
        [&](int row, int col, float v) { dw[(long long)row * d_in + col] += v; });
}

// The kernels: one warp per block; `product` (FearLinearProduct) picks the operands' type.
extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_linear_forward_tensor(const float* __restrict__ x, const float* __restrict__ w,
                                                                                        const float* __restrict__ b, float* __restrict__ y, int n,
                                                                                        int d_in, int d_out, int product) {
    if (product == FEAR_LINEAR_F16) fear_linear_forward_mma<FEAR_LINEAR_F16>(x, w, b, y, n, d_in, d_out);
    else if (product == FEAR_LINEAR_BF16) fear_linear_forward_mma<FEAR_LINEAR_BF16>(x, w, b, y, n, d_in, d_out);
    else fear_linear_forward_mma<FEAR_LINEAR_TF32>(x, w, b, y, n, d_in, d_out);
}

extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_linear_backward_input_tensor(const float* __restrict__ dy, const float* __restrict__ w,
                                                                                               float* __restrict__ dx, int n, int d_in, int d_out,
                                                                                               int accumulate, int product) {
    if (product == FEAR_LINEAR_F16) fear_linear_backward_input_mma<FEAR_LINEAR_F16>(dy, w, dx, n, d_in, d_out, accumulate);
    else if (product == FEAR_LINEAR_BF16) fear_linear_backward_input_mma<FEAR_LINEAR_BF16>(dy, w, dx, n, d_in, d_out, accumulate);
    else fear_linear_backward_input_mma<FEAR_LINEAR_TF32>(dy, w, dx, n, d_in, d_out, accumulate);
}

extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_linear_backward_weight_tensor(const float* __restrict__ x, const float* __restrict__ dy,
                                                                                                float* __restrict__ dw, int n, int d_in, int d_out,
                                                                                                int product) {
    if (product == FEAR_LINEAR_F16) fear_linear_backward_weight_mma<FEAR_LINEAR_F16>(x, dy, dw, n, d_in, d_out);
    else if (product == FEAR_LINEAR_BF16) fear_linear_backward_weight_mma<FEAR_LINEAR_BF16>(x, dy, dw, n, d_in, d_out);
    else fear_linear_backward_weight_mma<FEAR_LINEAR_TF32>(x, dy, dw, n, d_in, d_out);
}
