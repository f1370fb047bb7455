// Convolutions (no bias, square k x k kernels, zero padding); mirror src/engine/cpu/conv.rs.
// Layouts: x [n, cin, h, w], w [cout, cin, k, k], y [n, cout, oh, ow].
//
// Plain FP32 direct convolutions with the taps known at compile time: each kernel dispatches
// once, on a block-uniform branch, to a body templated on k (3 or 1; and on the stride for the
// input gradient), so the k*k taps unroll, the per-tap offsets and bounds are computed once per
// output and then reused for every channel, and accumulators stay in registers (no local memory;
// build.rs fails on a stack frame). src/engine/cuda/ops.rs launches only the shapes handled here
// (k in {1, 3}, stride in {1, 2}); the network needs no other.

// The taps of a K x K window at (y0, x0) of an h x w plane: offset of each tap and whether it lies
// inside. An outside tap gets offset 0 (a valid address) and is masked to zero where it is used,
// so the inner loops load without branching.
template <int K>
__device__ __forceinline__ void fear_conv_taps(int y0, int x0, int h, int w, int* off, bool* in) {
#pragma unroll
    for (int ky = 0; ky < K; ++ky) {
#pragma unroll
        for (int kx = 0; kx < K; ++kx) {
            int iy = y0 + ky, ix = x0 + kx;
            bool ok = iy >= 0 && iy < h && ix >= 0 && ix < w;
            in[ky * K + kx] = ok;
            off[ky * K + kx] = ok ? iy * w + ix : 0;
        }
    }
}

// One thread per output element; sums over input channels, then taps (the CPU op's order).
template <int K>
__device__ __forceinline__ void fear_conv_forward_body(const float* __restrict__ x, const float* __restrict__ wt,
                                                       float* __restrict__ y, int n, int cin, int h, int w,
                                                       int cout, int stride, int pad, int oh, int ow) {
    int plane = oh * ow, total = n * cout * plane;
    long long in_plane = (long long)h * w;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += gridDim.x * blockDim.x) {
        int ox = o % ow, oy = (o / ow) % oh, co = (o / plane) % cout, b = o / (plane * cout);
        int off[K * K];
        bool in[K * K];
        fear_conv_taps<K>(oy * stride - pad, ox * stride - pad, h, w, off, in);
        const float* xp = x + (long long)b * cin * in_plane;
        const float* wp = wt + (long long)co * cin * K * K;
        float s = 0.0f;
        for (int ci = 0; ci < cin; ++ci, xp += in_plane, wp += K * K) {
#pragma unroll
            for (int t = 0; t < K * K; ++t) {
                float v = xp[off[t]];
                s += (in[t] ? v : 0.0f) * wp[t];
            }
        }
        y[o] = s;
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_conv_forward(const float* __restrict__ x, const float* __restrict__ wt, float* __restrict__ y, int n, int cin,
                  int h, int w, int cout, int k, int stride, int pad, int oh, int ow) {
    if (k == 3) fear_conv_forward_body<3>(x, wt, y, n, cin, h, w, cout, stride, pad, oh, ow);
    else if (k == 1) fear_conv_forward_body<1>(x, wt, y, n, cin, h, w, cout, stride, pad, oh, ow);
}

// dx += conv-transpose of dy: one thread per input element, gathering every output it feeds.
// Input row iy feeds output row oy through tap ky when iy + pad - ky = oy * S; with S a
// compile-time 1 or 2 that test is a compare (S = 1) or a bit test and shift (S = 2), not the
// run-time division it was. The taps are resolved once per element, before the channel loop.
template <int K, int S>
__device__ __forceinline__ void fear_conv_backward_input_body(const float* __restrict__ dy, const float* __restrict__ wt,
                                                              float* __restrict__ dx, int n, int cin, int h, int w,
                                                              int cout, int pad, int oh, int ow) {
    int plane = h * w, total = n * cin * plane;
    long long out_plane = (long long)oh * ow;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int ix = i % w, iy = (i / w) % h, ci = (i / plane) % cin, b = i / (plane * cin);
        int off[K * K];
        bool in[K * K];
#pragma unroll
        for (int ky = 0; ky < K; ++ky) {
#pragma unroll
            for (int kx = 0; kx < K; ++kx) {
                int ty = iy + pad - ky, tx = ix + pad - kx;  // = oy * S, ox * S
                bool ok = ty >= 0 && tx >= 0 && ty % S == 0 && tx % S == 0;
                int oy = (unsigned)ty / S, ox = (unsigned)tx / S;
                ok = ok && oy < oh && ox < ow;
                in[ky * K + kx] = ok;
                off[ky * K + kx] = ok ? oy * ow + ox : 0;
            }
        }
        const float* dyp = dy + (long long)b * cout * out_plane;
        const float* wp = wt + (long long)ci * K * K;
        long long w_step = (long long)cin * K * K;
        float s = 0.0f;
        for (int co = 0; co < cout; ++co, dyp += out_plane, wp += w_step) {
#pragma unroll
            for (int t = 0; t < K * K; ++t) {
                float g = dyp[off[t]];
                s += (in[t] ? g : 0.0f) * wp[t];
            }
        }
        dx[i] += s;
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_conv_backward_input(const float* __restrict__ dy, const float* __restrict__ wt, float* __restrict__ dx, int n,
                         int cin, int h, int w, int cout, int k, int stride, int pad, int oh, int ow) {
    if (k == 3 && stride == 1) fear_conv_backward_input_body<3, 1>(dy, wt, dx, n, cin, h, w, cout, pad, oh, ow);
    else if (k == 3 && stride == 2) fear_conv_backward_input_body<3, 2>(dy, wt, dx, n, cin, h, w, cout, pad, oh, ow);
    else if (k == 1 && stride == 1) fear_conv_backward_input_body<1, 1>(dy, wt, dx, n, cin, h, w, cout, pad, oh, ow);
    else if (k == 1 && stride == 2) fear_conv_backward_input_body<1, 2>(dy, wt, dx, n, cin, h, w, cout, pad, oh, ow);
}

// dw += sum over batch and output positions of dy * x: one block of FEAR_WGRAD_THREADS threads per
// (cout, cin) pair. The block walks the positions as rows of one image's output plane: thread t
// starts at (row t / span, column t % span) and steps by whole spans, carrying (oy, ox) along
// instead of dividing per position. Each thread sums its share for all K*K taps in registers,
// then the block adds the partials in a fixed tree (the same result on every run).
template <int K>
__device__ __forceinline__ void fear_conv_backward_weight_body(const float* __restrict__ x, const float* __restrict__ dy,
                                                               float* __restrict__ dw, int n, int cin, int h, int w,
                                                               int cout, int stride, int pad, int oh, int ow) {
    __shared__ float partial[K * K][FEAR_WGRAD_THREADS];
    int plane = oh * ow;
    int span = plane < FEAR_WGRAD_THREADS ? plane : FEAR_WGRAD_THREADS;  // threads per image
    int rows = FEAR_WGRAD_THREADS / span;                                // images walked at once
    int row = threadIdx.x / span, col = threadIdx.x % span;
    int oy0 = col / ow, ox0 = col % ow, step_y = span / ow, step_x = span % ow;
    long long in_plane = (long long)h * w;
    for (int pair = blockIdx.x; pair < cout * cin; pair += gridDim.x) {
        int co = pair / cin, ci = pair % cin;
        float acc[K * K];
#pragma unroll
        for (int t = 0; t < K * K; ++t) acc[t] = 0.0f;
        for (int b = row; row < rows && b < n; b += rows) {
            const float* dyp = dy + ((long long)b * cout + co) * plane;
            const float* xp = x + ((long long)b * cin + ci) * in_plane;
            int oy = oy0, ox = ox0;
            for (int q = col; q < plane; q += span) {
                float g = dyp[q];
                // Rows and columns are tested once each (2K tests, not K*K), then combined per tap.
                int y0 = oy * stride - pad, x0 = ox * stride - pad;
                bool row_in[K], col_in[K];
#pragma unroll
                for (int j = 0; j < K; ++j) {
                    row_in[j] = y0 + j >= 0 && y0 + j < h;
                    col_in[j] = x0 + j >= 0 && x0 + j < w;
                }
                int corner = y0 * w + x0;  // may be negative: only in-bounds taps are read
#pragma unroll
                for (int ky = 0; ky < K; ++ky) {
#pragma unroll
                    for (int kx = 0; kx < K; ++kx) {
                        bool ok = row_in[ky] && col_in[kx];
                        float v = ok ? xp[corner + ky * w + kx] : 0.0f;
                        acc[ky * K + kx] += g * v;
                    }
                }
                ox += step_x;
                oy += step_y;
                if (ox >= ow) {
                    ox -= ow;
                    ++oy;
                }
            }
        }
#pragma unroll
        for (int t = 0; t < K * K; ++t) partial[t][threadIdx.x] = acc[t];
        __syncthreads();
        for (int half = FEAR_WGRAD_THREADS / 2; half > 0; half /= 2) {
            if (threadIdx.x < half) {
#pragma unroll
                for (int t = 0; t < K * K; ++t) partial[t][threadIdx.x] += partial[t][threadIdx.x + half];
            }
            __syncthreads();
        }
        if (threadIdx.x < K * K) dw[(long long)pair * K * K + threadIdx.x] += partial[threadIdx.x][0];
        __syncthreads();
    }
}

extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS) fear_conv_backward_weight(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw, int n,
                          int cin, int h, int w, int cout, int k, int stride, int pad, int oh, int ow) {
    if (k == 3) fear_conv_backward_weight_body<3>(x, dy, dw, n, cin, h, w, cout, stride, pad, oh, ow);
    else if (k == 1) fear_conv_backward_weight_body<1>(x, dy, dw, n, cin, h, w, cout, stride, pad, oh, ow);
}
