// The 3x3 average pool at one output (stride 1, padding 1, count_include_pad = false: the mean of
// the in-image part of the window), shared by fear_avg_pool3_forward and fear_node_sum's pooled
// terms so both sum the window in the same order (the same bits).
__device__ __forceinline__ float pool3_inv_count(int i, int j, int h, int w) {
    int rows = 1 + (i > 0) + (i + 1 < h);
    int cols = 1 + (j > 0) + (j + 1 < w);
    return 1.0f / (float)(rows * cols);
}

// The sum of term(r, c) over the in-image part of the 3x3 window centred at (i, j), row by row:
// the one order the forward, its adjoint and the node sums add a window in.
template <typename F>
__device__ __forceinline__ float fear_pool3_window_sum(int i, int j, int h, int w, F term) {
    float s = 0.0f;
    for (int di = -1; di <= 1; ++di) {
        int r = i + di;
        if (r < 0 || r >= h) continue;
        for (int dj = -1; dj <= 1; ++dj) {
            int c = j + dj;
            if (c >= 0 && c < w) s += term(r, c);
        }
    }
    return s;
}

// Output `o` of planes of h x w (plane o / (h w), row and column within it), of the values
// value(v) of x (a node sum pooling a batch norm's output reads it normalised). x is stored as S
// (float, fear_bf16 or fear_f16: kernels/storage.cuh).
template <typename S, typename F>
__device__ __forceinline__ float fear_avg_pool3_of(const S* __restrict__ x, int o, int h, int w, F value) {
    int hw = h * w;
    const S* plane = x + (o / hw) * hw;
    int i = (o % hw) / w, j = o % w;
    return fear_pool3_window_sum(i, j, h, w, [&](int r, int c) { return value(fear_load(plane, r * w + c)); }) * pool3_inv_count(i, j, h, w);
}

template <typename S>
__device__ __forceinline__ float fear_avg_pool3_at(const S* __restrict__ x, int o, int h, int w) {
    return fear_avg_pool3_of(x, o, h, w, [](float v) { return v; });
}

// The 3x3 average pool's adjoint at input (i, j) of a plane of dy: dy / count gathered from the
// outputs whose window holds it (fear_avg_pool3_backward, and the convolution input gradient's
// pooled term: the same bits).
template <typename S>
__device__ __forceinline__ float fear_avg_pool3_adjoint_at(const S* __restrict__ plane, int i, int j, int h, int w) {
    return fear_pool3_window_sum(i, j, h, w, [&](int r, int c) { return fear_load(plane, r * w + c) * pool3_inv_count(r, c, h, w); });
}
