// Convolutions (no bias, square k x k kernels, k <= 3, zero padding); mirror
// src/engine/cpu/conv.rs. Layouts: x [n, cin, h, w], w [cout, cin, k, k], y [n, cout, oh, ow].
// Plain FP32 direct convolutions: correct on every target; the fast paths come later.

#define FEAR_CONV_MAX_K 3
#define FEAR_WGRAD_THREADS 256

// One thread per output element.
extern "C" __global__ void fear_conv_forward(const float* __restrict__ x, const float* __restrict__ wt,
                                             float* __restrict__ y, int n, int cin, int h, int w, int cout,
                                             int k, int stride, int pad, int oh, int ow) {
    int total = n * cout * oh * ow;
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += gridDim.x * blockDim.x) {
        int ox = o % ow, oy = (o / ow) % oh, co = (o / (ow * oh)) % cout, b = o / (ow * oh * cout);
        float s = 0.0f;
        for (int ci = 0; ci < cin; ++ci) {
            const float* xp = x + ((long long)b * cin + ci) * h * w;
            const float* wp = wt + ((long long)co * cin + ci) * k * k;
            for (int ky = 0; ky < k; ++ky) {
                int iy = oy * stride - pad + ky;
                if (iy < 0 || iy >= h) continue;
                for (int kx = 0; kx < k; ++kx) {
                    int ix = ox * stride - pad + kx;
                    if (ix >= 0 && ix < w) s += xp[iy * w + ix] * wp[ky * k + kx];
                }
            }
        }
        y[o] = s;
    }
}

// dx += conv-transpose of dy: one thread per input element, gathering every output it feeds.
extern "C" __global__ void fear_conv_backward_input(const float* __restrict__ dy, const float* __restrict__ wt,
                                                    float* __restrict__ dx, int n, int cin, int h, int w,
                                                    int cout, int k, int stride, int pad, int oh, int ow) {
    int total = n * cin * h * w;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int ix = i % w, iy = (i / w) % h, ci = (i / (w * h)) % cin, b = i / (w * h * cin);
        float s = 0.0f;
        for (int co = 0; co < cout; ++co) {
            const float* dyp = dy + ((long long)b * cout + co) * oh * ow;
            const float* wp = wt + ((long long)co * cin + ci) * k * k;
            for (int ky = 0; ky < k; ++ky) {
                int ty = iy + pad - ky;  // = oy * stride
                if (ty < 0 || ty % stride != 0 || ty / stride >= oh) continue;
                for (int kx = 0; kx < k; ++kx) {
                    int tx = ix + pad - kx;
                    if (tx < 0 || tx % stride != 0 || tx / stride >= ow) continue;
                    s += dyp[(ty / stride) * ow + tx / stride] * wp[ky * k + kx];
                }
            }
        }
        dx[i] += s;
    }
}

// dw += sum over batch and output positions of dy * x: one block of FEAR_WGRAD_THREADS threads per
// (cout, cin) pair; each thread sums a strided share of the positions for all k*k taps, then the
// block adds the partials in a fixed tree (the same result on every run).
extern "C" __global__ void fear_conv_backward_weight(const float* __restrict__ x, const float* __restrict__ dy,
                                                     float* __restrict__ dw, int n, int cin, int h, int w,
                                                     int cout, int k, int stride, int pad, int oh, int ow) {
    __shared__ float partial[FEAR_CONV_MAX_K * FEAR_CONV_MAX_K][FEAR_WGRAD_THREADS];
    int taps = k * k;
    for (int pair = blockIdx.x; pair < cout * cin; pair += gridDim.x) {
        int co = pair / cin, ci = pair % cin;
        float acc[FEAR_CONV_MAX_K * FEAR_CONV_MAX_K];
        for (int t = 0; t < FEAR_CONV_MAX_K * FEAR_CONV_MAX_K; ++t) acc[t] = 0.0f;
        int positions = n * oh * ow;
        for (int p = threadIdx.x; p < positions; p += blockDim.x) {
            int ox = p % ow, oy = (p / ow) % oh, b = p / (ow * oh);
            float g = dy[(((long long)b * cout + co) * oh + oy) * ow + ox];
            const float* xp = x + ((long long)b * cin + ci) * h * w;
            for (int ky = 0; ky < k; ++ky) {
                int iy = oy * stride - pad + ky;
                if (iy < 0 || iy >= h) continue;
                for (int kx = 0; kx < k; ++kx) {
                    int ix = ox * stride - pad + kx;
                    if (ix >= 0 && ix < w) acc[ky * k + kx] += g * xp[iy * w + ix];
                }
            }
        }
        for (int t = 0; t < taps; ++t) partial[t][threadIdx.x] = acc[t];
        __syncthreads();
        for (int half = FEAR_WGRAD_THREADS / 2; half > 0; half /= 2) {
            if (threadIdx.x < half) {
                for (int t = 0; t < taps; ++t) partial[t][threadIdx.x] += partial[t][threadIdx.x + half];
            }
            __syncthreads();
        }
        if (threadIdx.x < taps) dw[(long long)pair * taps + threadIdx.x] += partial[threadIdx.x][0];
        __syncthreads();
    }
}
