// Convolutions (no bias, square k x k kernels, zero padding); mirror cpu.rs.
// Layouts: x [n, cin, h, w], w [cout, cin, k, k], y [n, cout, oh, ow] (NCHW, as everywhere else).
//
// Implicit GEMM in FP32 SIMT. Forward: M = output pixels, N = output channels, K = cin * k * k.
// A block owns a tile of output pixels of one image and every output channel (up to 64 per pass;
// more channels take more passes). Per chunk of input channels it stages, in dynamic shared
// memory, the input tile with its halo (zeros where the window hangs over the image: the padding
// is in the tile, so the inner loop has no bounds tests) and the chunk's weights as
// [channel][tap][output channel]. Each thread then accumulates FEAR_CONV_PIX pixels x
// FEAR_CONV_CO channels in registers: per (input channel, tap) FEAR_CONV_PIX shared loads of the
// input, two float4 loads of weights (the same address across a warp: a broadcast) and
// FEAR_CONV_PIX * FEAR_CONV_CO FMAs. No im2col buffer; the taps are compile-time shifts of a
// base address; every integer division is per block or per thread, never in the MAC loop.
//
// The input gradient is the same GEMM on dy (M = input pixels, N = cin, K = cout * taps): with
// stride 2 each of the four pixel phases (iy % 2, ix % 2) of dx is a stride-1 correlation of dy
// with a 2x2 (or 1x1) subset of the taps, flipped, so fear_conv_tile serves both; only the
// weight staging and the epilogue (dx += instead of y =) differ.
//
// The weight gradient (M = cout, N = cin * taps, K = pixels) is split over blocks by pixels: each
// block sums its share into one slot of a workspace, and fear_conv_backward_weight_reduce adds the
// slots in a fixed order (deterministic, no atomics, no last-block fences). In the GPU plan that
// sum is deferred to extra blocks of the next fear_conv_backward launch (fear_conv_sum_partials).
//
// Sibling convolutions (two convolutions of one input, e.g. the two edges leaving a cell's node 0)
// run as one wider GEMM (item 4 of issue 13): the forward's N is both convolutions' output
// channels (x staged once for both), the input gradient's K both output gradients' channels (dx
// written once, the sum of both), the weight gradient's M both weights' rows. FearConvSibling
// holds the second convolution's tensors and `split`, where its channels start in that shared
// dimension; a block reads and writes the first's tensors below it and the second's from it on.
//
// What the GPU plan folds in besides (issue 13): the input gradient's epilogue adds dx's other
// terms (FearDxTerms: a skip edge's copy, a pool edge's adjoint) in the unfused kernels' order;
// and a convolution whose input is a batch norm's output that its readers apply reads the batch
// norm's input through fear_bn_normalise (x as staged, the ReLU mask in the epilogue).
//
// Tensor cores (issue 14): fear_conv_forward_tf32 and fear_conv_forward_bf16mma, the same block,
// tile, staging and epilogue, with fear_conv_tile's product (MMA) FEAR_CONV_TF32 or
// FEAR_CONV_BF16. Staging rounds each operand once (x after the fused ReLU, and w) to the
// product's type (fear_conv_round), the CPU face's rounding point; the shared tiles stay f32
// (holding those rounded values). The MAC loop becomes fear_conv_mma_chunk: the block's M (pixel
// slots) x N (channels of the pass) output tile is 32 m16n8 tiles, 8 per warp, and K runs over
// (8 input channels of the chunk, tap), each k-step one mma.sync.m16n8k8 (.tf32 or .bf16, FP32
// accumulate) per tile with fragments read straight from the staged tiles (lane maps of mma.cuh:
// a32/b32 for tf32, a16/b16 for bf16, whose registers pack two channels; channels past the chunk
// read as zeros). fear_conv_mma_unpark then moves the accumulators through shared memory to the
// threads the FP32 epilogue assigns them to, so y's stores and the batch-norm statistics are the
// FP32 path's code. Without tf32/bf16 MMA (the sm_70 build) the kernel keeps the FMA loop over
// the same rounded operands: same rounding points. fear_conv_forward_f16mma (FEAR_CONV_F16, the
// V100's product) rounds to IEEE halves and runs mma.sync.m8n8k4.f16 (sm_70+) in
// fear_conv_mma_chunk_f16: the same 8 m16n8 tiles per warp, as 4 pairs whose halves the four
// quadpairs of one m8n8k4 compute, k-steps of 4 channels.
//
// The gradients take the same products (fear_conv_backward_input_tf32 / _bf16mma / _f16mma, the
// weight gradient's and the two-gradient launch's of those names). The input gradient is fear_conv_tile
// again: dy rounded as staged (after the fused batch norm's backward), w as staged, the MMA loop
// and the unpark above, then its own epilogue (mask, dx's terms). The weight gradient rounds dy
// and x as it stages them (x normalised and through the ReLU first) and runs its own MMA loop
// (fear_conv_wgrad_mma_item): each warp's 16 output channels by the 8 input channels of every tap,
// K over the item's pixels; its accumulators go straight to the split's partial slot. FP16's
// (fear_conv_wgrad_mma_item_f16) computes the same tiles two taps per m8n8k4.
//
// Tensors stored as bfloat16 or IEEE half (`--precision bf16`, `fp16`: kernels/storage.cuh): every kernel reading or
// writing the (image, channel, row, column) tensors is a template over their storage type E
// (float, or fear_bf16 / fear_f16 for the `_bf16` / `_f16` instantiations): x, y, dy, dx, the ReLU mask, a batch
// norm's x, dx's terms, and the sibling's. Weights, their gradients and partials, batch-norm
// coefficients and statistics stay f32. Staging widens each element to f32 (fear_load), so the
// shared tiles, the MAC loops and the accumulators are the f32 kernels'; the epilogue rounds once
// where it stores (fear_store). A value the unfused plan would have stored and read back is
// rounded as stored (fear_stored), so fused and unfused launches round at the same points: the
// statistics are of y as stored, a batch norm's output read normalised is what its apply kernel
// would have stored, and dy through a batch norm's backward is what that backward would have
// stored. dx is the exception: its terms (a sibling's input gradient, `added`, `pooled`, the
// masked gradient) are summed in f32 and stored once, one rounding where separate launches make
// one each.

#define FEAR_CONV_PIX 4  // output pixels per thread
#define FEAR_CONV_CO 8   // output channels per thread
#define FEAR_WGRAD_CO 4  // output channels per thread of the weight gradient
#define FEAR_WGRAD_CI 8  // input channels per block of the weight gradient
#define FEAR_WGRAD_COP 64  // output channels per block of the weight gradient
#define FEAR_WGRAD_DY_STRIDE 68  // floats per pixel of the staged dy tile (a multiple of 4: float4 loads)
#define FEAR_CONV_MMA_TILES 8  // m16n8 output tiles per warp of the tensor-core forwards
static_assert(FEAR_CONV_PIX * FEAR_CONV_CO == 4 * FEAR_CONV_MMA_TILES, "a warp's m16n8 tiles hold its threads' outputs");

// The forward product's precision (fear_conv_tile's MMA): FP32 FMAs on the operands as read, or
// both operands rounded to TF32 / bfloat16 / IEEE half and multiplied on tensor cores, FP32
// accumulate.
enum FearConvProduct { FEAR_CONV_FP32, FEAR_CONV_TF32, FEAR_CONV_BF16, FEAR_CONV_F16 };

// Whether this build multiplies product MMA on tensor cores (else the FMA loop over the same
// rounded operands; mma.cuh says which instructions a build has): TF32 and BF16 take m16n8k8
// (sm_80+), FP16 m8n8k4 (sm_70+: the V100's instruction; later GPUs run it too).
template <int MMA>
__device__ __forceinline__ constexpr bool fear_conv_on_mma() {
    return MMA == FEAR_CONV_F16 ? FEAR_HAS_MMA_M8N8K4 : MMA != FEAR_CONV_FP32 && FEAR_HAS_MMA_M16N8K8;
}

// v rounded to the product's operand type (to nearest even; f32 holds it exactly): the one
// rounding of each staged operand, where the CPU face rounds (Precision::round_all).
template <int MMA>
__device__ __forceinline__ float fear_conv_round(float v) {
    if constexpr (MMA == FEAR_CONV_TF32) return fear_round_tf32(v);
    else if constexpr (MMA == FEAR_CONV_BF16) return fear_bf16_to_f32(fear_f32_to_bf16(v));
    else if constexpr (MMA == FEAR_CONV_F16) return fear_f16_to_f32(fear_f32_to_f16(v));
    else return v;
}

// One block's output tile: images b0 .. b0 + ti (several only when a whole image is smaller than
// the block), channels from co0 (pass width cw = 8 << glog2), the phase (py, px) of the
// destination pixels (dst row = qy * P + py), the tile origin (qy0, qx0) on that phase grid, and
// the source window origin (sy0, sx0) for the tile's first pixel.
//
// T: taps per side of the correlation; S: its step in the source; P: the destination's phase
// step (1 forward, the stride for the input gradient). The thread owns pixel slots
// tpix + j * (threads / groups) of the ti x tr x tc tile and channels co0 + cg * 8 ... + 7.
//
// Fused ReLU (the GPU plan fuses a ReLU whose only consumer is the convolution): the forward reads
// relu(src) when `relu_src` is set; the input gradient, given the ReLU's input as `mask`, keeps
// only the pixels where it is positive (the ReLU's backward, in the epilogue).
//
// Fused batch-norm backward (the GPU plan, for the batch norm reading the convolution's output):
// with `bn_coef`, the gradients read src (the batch norm's output gradient) as the batch norm's
// input gradient, 0 + (a*dy + (b*(x - mean) + k)) with x = bn_x and coef (a, b, k, mean) per
// channel: fear_bn_backward_apply's expression, evaluated as the tile is staged.
// The result is rounded as that batch norm's backward would store it (E: the tensors' storage).
template <typename E>
__device__ __forceinline__ float fear_bn_grad(float dy, const E* __restrict__ bn_x, const float* __restrict__ bn_coef, long long i, int ch) {
    return fear_stored(bn_x, 0.0f + (bn_coef[4 * ch] * dy + (bn_coef[4 * ch + 1] * (fear_load(bn_x, i) - bn_coef[4 * ch + 3]) + bn_coef[4 * ch + 2])));
}

// Batch-norm statistics of a forward block's outputs (the GPU plan, for the batch norm that alone
// reads this convolution's output; item 3 of issue 13): per channel, the block's count, the mean
// of the values it stored and their summed squared deviations from that mean, each summed in
// double over the channel group's pixel threads in a fixed tree (two passes: the mean, then the
// deviations, so no E[x^2] - E[x]^2 cancellation), to stats[3 * (ch * parts + part)].
// fear_bn_train_finalize merges a channel's parts.
//
// Shared memory (the launch gives at least launch.rs's STATS_SHARED_BYTES): the accumulators, parked
// there before y is stored so that they leave the registers (kept live through this epilogue they
// made ptxas spill on sm_70), [value j * FEAR_CONV_CO + c][thread]; then the per-thread sums and
// the squared deviations, [channel group][channel][pixel thread] doubles each. Each value is
// parked as y stores it (`y` picks the storage type): the statistics are of the stored y, as the
// batch norm's own pass over it would take them.
template <typename E>
__device__ __forceinline__ void fear_conv_park(const float (&acc)[FEAR_CONV_PIX][FEAR_CONV_CO], float* parked, const E* y) {
    __syncthreads();  // the MAC loop's readers of shared memory are done
#pragma unroll
    for (int j = 0; j < FEAR_CONV_PIX; ++j)
#pragma unroll
        for (int c = 0; c < FEAR_CONV_CO; ++c) parked[(j * FEAR_CONV_CO + c) * FEAR_CONV_THREADS + threadIdx.x] = fear_stored(y, acc[j][c]);
}

__device__ __forceinline__ void fear_conv_tree_sum(double* mine, int tp, int tpix) {
    __syncthreads();
    for (int half = tp / 2; half > 0; half /= 2) {
        if (tpix < half) {
#pragma unroll
            for (int c = 0; c < FEAR_CONV_CO; ++c) mine[c * tp] += mine[c * tp + half];
        }
        __syncthreads();
    }
}

__device__ __forceinline__ void fear_conv_bn_partials(float* parked, const bool (&live)[FEAR_CONV_PIX], double* __restrict__ stats,
                                                      int tp, int tpix, int cg, int ch0, int c_dst, double count, int part, int parts) {
    auto value = [&](int j, int c) { return (double)parked[(j * FEAR_CONV_CO + c) * FEAR_CONV_THREADS + threadIdx.x]; };
    double* red = reinterpret_cast<double*>(parked + FEAR_CONV_THREADS * FEAR_CONV_PIX * FEAR_CONV_CO);
    const int group = cg * FEAR_CONV_CO * tp;
    double* sums = red + group + tpix;
    double* squares = red + FEAR_CONV_THREADS * FEAR_CONV_CO + group + tpix;
#pragma unroll 1
    for (int c = 0; c < FEAR_CONV_CO; ++c) {  // rolled: the epilogue must not add register pressure
        double s = 0.0;
#pragma unroll
        for (int j = 0; j < FEAR_CONV_PIX; ++j) s += live[j] ? value(j, c) : 0.0;
        sums[c * tp] = s;
    }
    fear_conv_tree_sum(sums, tp, tpix);
    const double inv_count = 1.0 / count;  // one division: each is a long subroutine on the GPU
#pragma unroll 1
    for (int c = 0; c < FEAR_CONV_CO; ++c) {
        const double mean = sums[c * tp - tpix] * inv_count;
        double q = 0.0;
#pragma unroll
        for (int j = 0; j < FEAR_CONV_PIX; ++j) {
            double d = value(j, c) - mean;
            q += live[j] ? d * d : 0.0;
        }
        squares[c * tp] = q;
    }
    fear_conv_tree_sum(squares, tp, tpix);
    if (tpix != 0) return;
    for (int c = 0; c < FEAR_CONV_CO && ch0 + c < c_dst; ++c) {
        double* at = stats + 3LL * ((long long)(ch0 + c) * parts + part);
        at[0] = count;
        at[1] = sums[c * tp] * inv_count;
        at[2] = squares[c * tp];
    }
}

// The tensor-core forwards' MAC loop over one staged chunk (see the header): warp tile i is m16n8
// tile t = warp * 8 + i of the block's output, rows 16 (t >> glog2) (pixel slots), columns
// 8 (t % groups) (channels of the pass). rows[i][h]: the staged-tile offset of the window of A's
// row h of this lane (fear_conv_mma_row); B's column is recomputed per use (an array of them
// spilled). `plane`: floats per staged channel (ti * halo). Operands are already rounded to the
// product's type as staged, so their bits go as they are: tf32 one per register (the a32/b32
// maps: an A element's row from i & 1, its column from i >> 1), bf16 two channels per register
// (the a16/b16 maps: A's register h is row h at channels ka0, ka1; B's register is rows kb0, kb1).
template <int T, int MMA>
__device__ __forceinline__ void fear_conv_mma_chunk(float (&d)[FEAR_CONV_MMA_TILES][4], const float* xs, const float* wsh,
                                                    const int (&rows)[FEAR_CONV_MMA_TILES][2], int cn, int plane, int hc, int cw, int glog2) {
    constexpr bool bf16 = MMA == FEAR_CONV_BF16;
    const int lane = threadIdx.x & 31, t0 = (threadIdx.x >> 5) * FEAR_CONV_MMA_TILES, gmask = (1 << glog2) - 1;
    auto bits = [](float v) { return (unsigned)__float_as_int(v); };
    for (int c8 = 0; c8 < cn; c8 += 8) {
        // This lane's two channels of the k-step: A's columns and B's rows (the same pair).
        const int ka0 = c8 + (bf16 ? fear_m16n8k8_a16_col(lane, 0) : fear_m16n8k8_a32_col(lane, 0));
        const int ka1 = c8 + (bf16 ? fear_m16n8k8_a16_col(lane, 1) : fear_m16n8k8_a32_col(lane, 2));
        const int kb0 = c8 + (bf16 ? fear_m16n8k8_b16_row(lane, 0) : fear_m16n8k8_b32_row(lane, 0));
        const int kb1 = c8 + (bf16 ? fear_m16n8k8_b16_row(lane, 1) : fear_m16n8k8_b32_row(lane, 1));
        const bool a0 = ka0 < cn, a1 = ka1 < cn, b0 = kb0 < cn, b1 = kb1 < cn;
        const float* xa0 = xs + ka0 * plane;
        const float* xa1 = xs + ka1 * plane;
        const float* wb0 = wsh + kb0 * (T * T) * cw;
        const float* wb1 = wsh + kb1 * (T * T) * cw;
        // One tap per iteration: unrolling the taps lets ptxas hoist their loads and spill.
#pragma unroll 1
        for (int ty = 0; ty < T; ++ty) {
#pragma unroll 1
            for (int tx = 0; tx < T; ++tx) {
                const int shift = ty * hc + tx, tap = (ty * T + tx) * cw;
#pragma unroll
                for (int i = 0; i < FEAR_CONV_MMA_TILES; ++i) {
                    if constexpr (bf16) {
                        const int col = 8 * ((t0 + i) & gmask) + fear_m16n8k8_b16_col(lane, 0);
                        const unsigned a[2] = {fear_pack_bf16_exact(a0 ? xa0[rows[i][0] + shift] : 0.0f, a1 ? xa1[rows[i][0] + shift] : 0.0f),
                                               fear_pack_bf16_exact(a0 ? xa0[rows[i][1] + shift] : 0.0f, a1 ? xa1[rows[i][1] + shift] : 0.0f)};
                        const unsigned b = fear_pack_bf16_exact(b0 ? wb0[tap + col] : 0.0f, b1 ? wb1[tap + col] : 0.0f);
                        fear_mma_bf16_m16n8k8(d[i], a, b, d[i]);
                    } else {
                        const int col = 8 * ((t0 + i) & gmask) + fear_m16n8k8_b32_col(lane, 0);
                        const unsigned a[4] = {a0 ? bits(xa0[rows[i][0] + shift]) : 0u, a0 ? bits(xa0[rows[i][1] + shift]) : 0u,
                                               a1 ? bits(xa1[rows[i][0] + shift]) : 0u, a1 ? bits(xa1[rows[i][1] + shift]) : 0u};
                        const unsigned b[2] = {b0 ? bits(wb0[tap + col]) : 0u, b1 ? bits(wb1[tap + col]) : 0u};
                        fear_mma_tf32_m16n8k8(d[i], a, b, d[i]);
                    }
                }
            }
        }
    }
}

// The pixel slot (of the block's tile) of A's row h (0: rows 0-7, 1: rows 8-15) of the warp's
// m16n8 tile i, for this lane: the product's A lane map (tf32: element h; bf16: register h,
// elements 2h and 2h + 1, which share the row). FP16 (m8n8k4, see fear_conv_mma_chunk_f16): the
// one row of the lane's quadpair in its tile pair i (i < 4; h unused).
template <int MMA>
__device__ __forceinline__ int fear_conv_mma_row(int warp, int i, int lane, int h, int glog2) {
    if constexpr (MMA == FEAR_CONV_F16) {
        const int q = fear_m8n8k4_quadpair(lane), t = warp * FEAR_CONV_MMA_TILES + 2 * i + (q >> 1);
        return 16 * (t >> glog2) + 8 * (q & 1) + fear_m8n8k4_thread(lane);
    }
    const int base = 16 * ((warp * FEAR_CONV_MMA_TILES + i) >> glog2);
    return base + (MMA == FEAR_CONV_BF16 ? fear_m16n8k8_a16_row(lane, 2 * h) : fear_m16n8k8_a32_row(lane, h));
}

// Where accumulator e of the lane's tile i lies in the block's output tile: pixel slot p, pass
// channel n. m16n8k8: the C lane map of warp tile i. FP16 (m8n8k4): d[i] holds elements
// 4 (i & 1) .. + 3 of tile pair i / 2's accumulators of the lane's quadpair q, whose product is
// rows 8 (q & 1) .. + 7 of m16n8 tile 2 (i / 2) + q / 2 (see fear_conv_mma_chunk_f16).
template <int MMA>
__device__ __forceinline__ void fear_conv_mma_at(int warp, int i, int e, int lane, int glog2, int& p, int& n) {
    const int gmask = (1 << glog2) - 1;
    if constexpr (MMA == FEAR_CONV_F16) {
        const int q = fear_m8n8k4_quadpair(lane), t = warp * FEAR_CONV_MMA_TILES + 2 * (i >> 1) + (q >> 1), el = 4 * (i & 1) + e;
        p = 16 * (t >> glog2) + 8 * (q & 1) + fear_m8n8k4_c_row(lane, el);
        n = 8 * (t & gmask) + fear_m8n8k4_c_col(lane, el);
    } else {
        const int t = warp * FEAR_CONV_MMA_TILES + i;
        p = 16 * (t >> glog2) + fear_m16n8k8_c_row(lane, e);
        n = 8 * (t & gmask) + fear_m16n8k8_c_col(lane, e);
    }
}

// d += one mma.sync.m8n8k4.f16 of A fragment a and B fragment b into tile pair `pair`, whose 8
// accumulators a lane keeps as d[2 pair] (elements 0-3) and d[2 pair + 1] (4-7): the layout of
// every FP16 loop here (fear_conv_mma_chunk_f16, fear_conv_wgrad_mma_item_f16).
template <int N>
__device__ __forceinline__ void fear_conv_mma_pair_f16(float (&d)[N][4], int pair, const unsigned (&a)[2], const unsigned (&b)[2]) {
    float acc[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[e] = d[2 * pair + (e >> 2)][e & 3];
    fear_mma_f16_m8n8k4(acc, a, b, acc);
#pragma unroll
    for (int e = 0; e < 8; ++e) d[2 * pair + (e >> 2)][e & 3] = acc[e];
}

// The FP16 forward's MAC loop over one staged chunk: mma.sync.m8n8k4.f16 (sm_70+), FP32
// accumulate. One instruction is four 8x8x4 products, one per quadpair q; here they are the four
// 8-row halves of a pair of the warp's m16n8 tiles (2 pair + q / 2, rows 8 (q & 1) .. + 7), so
// the warp's 8 tiles are 4 pairs, each lane keeps 8 accumulators per pair (d[2 pair] and
// d[2 pair + 1]: 32 in all, as m16n8k8 keeps), and a k-step is 4 channels. Thread th of a
// quadpair holds A's row th (its pixel slot's window: rows[pair][0]) at the step's 4 channels and
// B's column th (its pass channel) at the same 4: one register per two channels, operands
// already rounded to halves as staged (fear_pack_f16_exact); channels past the chunk read as
// zeros.
template <int T>
__device__ __forceinline__ void fear_conv_mma_chunk_f16(float (&d)[FEAR_CONV_MMA_TILES][4], const float* xs, const float* wsh,
                                                        const int (&rows)[FEAR_CONV_MMA_TILES][2], int cn, int plane, int hc, int cw, int glog2) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, q = fear_m8n8k4_quadpair(lane), th = fear_m8n8k4_thread(lane);
    const int gmask = (1 << glog2) - 1;
    for (int c4 = 0; c4 < cn; c4 += 4) {
        bool in[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) in[j] = c4 + j < cn;
        // One tap per iteration, as in fear_conv_mma_chunk.
#pragma unroll 1
        for (int ty = 0; ty < T; ++ty) {
#pragma unroll 1
            for (int tx = 0; tx < T; ++tx) {
                const int shift = ty * hc + tx, tap = (ty * T + tx) * cw;
#pragma unroll
                for (int pair = 0; pair < FEAR_CONV_MMA_TILES / 2; ++pair) {
                    const int col = 8 * ((warp * FEAR_CONV_MMA_TILES + 2 * pair + (q >> 1)) & gmask) + th;
                    float av[4], bv[4];
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        av[j] = in[j] ? xs[(c4 + j) * plane + rows[pair][0] + shift] : 0.0f;
                        bv[j] = in[j] ? wsh[(c4 + j) * (T * T) * cw + tap + col] : 0.0f;
                    }
                    const unsigned a[2] = {fear_pack_f16_exact(av[0], av[1]), fear_pack_f16_exact(av[2], av[3])};
                    const unsigned b[2] = {fear_pack_f16_exact(bv[0], bv[1]), fear_pack_f16_exact(bv[2], bv[3])};
                    fear_conv_mma_pair_f16(d, pair, a, b);
                }
            }
        }
    }
}

// The tensor-core kernels' accumulators to the FP32 epilogue's layout: each fragment element (pixel
// slot p, pass channel n: fear_conv_mma_at) goes to the thread that owns it there (channel group
// n / 8, pixel thread p % tp, its slot j = p / tp, channel c = n % 8), parked as fear_conv_park
// parks: that thread's acc[j][c] is fear_conv_parked(parked, j, c) after this. Needs
// FEAR_CONV_THREADS * 32 floats of shared memory.
__device__ __forceinline__ float& fear_conv_parked(float* parked, int j, int c) { return parked[(j * FEAR_CONV_CO + c) * FEAR_CONV_THREADS + threadIdx.x]; }

template <int MMA>
__device__ __forceinline__ void fear_conv_mma_park(const float (&d)[FEAR_CONV_MMA_TILES][4], float* parked, int glog2) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, tp = FEAR_CONV_THREADS >> glog2;
    __syncthreads();  // the last chunk's readers of shared memory are done
#pragma unroll
    for (int i = 0; i < FEAR_CONV_MMA_TILES; ++i) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            int p, n;
            fear_conv_mma_at<MMA>(warp, i, e, lane, glog2, p, n);
            const int owner = (n / FEAR_CONV_CO) * tp + p % tp;
            parked[((p / tp) * FEAR_CONV_CO + n % FEAR_CONV_CO) * FEAR_CONV_THREADS + owner] = d[i][e];
        }
    }
    __syncthreads();
}

// fear_conv_mma_park, then each thread's acc[j][c] read back (the forward's epilogue and
// statistics take them in registers).
template <int MMA>
__device__ __forceinline__ void fear_conv_mma_unpark(const float (&d)[FEAR_CONV_MMA_TILES][4], float (&acc)[FEAR_CONV_PIX][FEAR_CONV_CO],
                                                     float* parked, int glog2) {
    fear_conv_mma_park<MMA>(d, parked, glog2);
#pragma unroll
    for (int j = 0; j < FEAR_CONV_PIX; ++j)
#pragma unroll
        for (int c = 0; c < FEAR_CONV_CO; ++c) acc[j][c] = fear_conv_parked(parked, j, c);
}

// The second convolution of a sibling pair (see the header), or none: null pointers and split = the
// whole shared dimension. Forward: its weights `wt` (rows from output channel `split` on) and output
// `dst`. Input gradient: its dy `src` (channels from `split` on of K), weights `wt`, and the batch
// norm whose backward it applies (`bn_x`, `bn_coef`). Weight gradient: its dy `src` and batch norm
// (rows from `split` on). E: the tensors' storage type.
template <typename E>
struct FearConvSibling {
    const E* src;
    const float* wt;
    E* dst;
    const E* bn_x;
    const float* bn_coef;
    int split;
};

// Other terms of the activation gradient an input gradient writes (the GPU plan folds their
// kernels into it): dx = ((dx or 0) + added) + the input gradient + the 3x3 average pool's
// adjoint of `pooled` (a node-sum gradient reaching dx through a pool edge), each optional (null).
// The order is the unfused kernels' (an assign or add of `added`, the convolution adding, the
// pool's backward adding): the same bits in f32. Stored as bfloat16, dx is rounded once, after
// the last term (the unfused kernels round after each).
template <typename E>
struct FearDxTerms {
    const E* added;
    const E* pooled;
};

template <typename E, int T, int S, int P, bool DGRAD, int MMA = FEAR_CONV_FP32>
__device__ __forceinline__ void fear_conv_tile(int block, const E* __restrict__ src, const float* __restrict__ wt,
                                               E* __restrict__ dst, int n, int c_src, int hs, int ws, int c_dst,
                                               int hd, int wd, int k, int pad, int cin, int ti, int tr, int tc,
                                               int chunk, int glog2, int accumulate, int relu_src,
                                               const E* __restrict__ mask, const E* __restrict__ bn_x,
                                               const float* __restrict__ bn_coef, double* __restrict__ stats, FearConvSibling<E> sib,
                                               FearDxTerms<E> terms, const float* __restrict__ in_coef) {
    FEAR_DYNAMIC_SHARED(float, smem);
    const int cw = FEAR_CONV_CO << glog2;  // channels per pass
    const int passes = (c_dst + cw - 1) / cw;
    const int qh = (hd + P - 1) / P, qw = (wd + P - 1) / P;  // the largest phase grid
    const int tiles_x = (qw + tc - 1) / tc, tiles = tiles_x * ((qh + tr - 1) / tr);
    int bid = block;
    const int co0 = (bid % passes) * cw;
    bid /= passes;
    const int tile = bid % tiles;
    bid /= tiles;
    const int phase = bid % (P * P), b0 = bid / (P * P) * ti;
    const int py = phase / P, px = phase % P;
    const int qy0 = tile / tiles_x * tr, qx0 = tile % tiles_x * tc;
    // Forward: window origin qy * S - pad. Input gradient: the phase's first tap ky0 and the dy row
    // its last tap reads (see the header); outside taps have zero weights.
    const int ky0 = DGRAD ? (py + pad) % P : 0, kx0 = DGRAD ? (px + pad) % P : 0;
    const int offy = DGRAD ? T - 1 - (py + pad - ky0) / P : pad, offx = DGRAD ? T - 1 - (px + pad - kx0) / P : pad;
    const int hr = (tr - 1) * S + T, hc = (tc - 1) * S + T, halo = hr * hc;
    const int images = min(ti, n - b0);  // a tile may hold several whole (small) images
    const int sy0 = qy0 * S - offy, sx0 = qx0 * S - offx;
    float* xs = smem;  // [chunk][ti][hr][hc]
    float* wsh = smem + ((chunk * ti * halo + 3) & ~3);  // [chunk][T*T][cw], 16-byte aligned

    const int tp = FEAR_CONV_THREADS >> glog2;  // pixel threads per channel group
    const int tpix = threadIdx.x % tp, cg = threadIdx.x / tp;
    // Slot j of this thread: image img, tile row ty and column tx; a dead slot (past the image or
    // the batch) reads the tile's first window and is not stored.
    auto window = [&](int p, int& img, int& oy, int& ox) {  // of pixel slot p
        int ty = p % (tr * tc) / tc, tx = p % tc;
        img = p / (tr * tc);
        oy = (qy0 + ty) * P + py;
        ox = (qx0 + tx) * P + px;
        return img < images && oy < hd && ox < wd ? img * halo + ty * S * hc + tx * S : -1;
    };
    auto slot = [&](int j, int& img, int& oy, int& ox) { return window(tpix + j * tp, img, oy, ox); };
    int sbase[FEAR_CONV_PIX];
#pragma unroll
    for (int j = 0; j < FEAR_CONV_PIX; ++j) {
        int img, oy, ox;
        sbase[j] = max(slot(j, img, oy, ox), 0);
    }
    float acc[FEAR_CONV_PIX][FEAR_CONV_CO];
#pragma unroll
    for (int j = 0; j < FEAR_CONV_PIX; ++j)
#pragma unroll
        for (int c = 0; c < FEAR_CONV_CO; ++c) acc[j][c] = 0.0f;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    // The tensor-core forwards' accumulators and operand offsets (fear_conv_mma_chunk); unused otherwise.
    constexpr bool on_mma = fear_conv_on_mma<MMA>();
    float mma_acc[FEAR_CONV_MMA_TILES][4];
    int mma_rows[FEAR_CONV_MMA_TILES][2];
    if constexpr (on_mma) {
#pragma unroll
        for (int i = 0; i < FEAR_CONV_MMA_TILES; ++i) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                int img, oy, ox;
                mma_rows[i][h] = max(window(fear_conv_mma_row<MMA>(warp, i, lane, h, glog2), img, oy, ox), 0);
            }
#pragma unroll
            for (int e = 0; e < 4; ++e) mma_acc[i][e] = 0.0f;
        }
    }
    for (int c0 = 0; c0 < c_src; c0 += chunk) {
        const int cn = min(chunk, c_src - c0);
        __syncthreads();  // the previous chunk's readers are done
        // The input tile with its halo, row by row (coalesced along a row), zeros outside.
        for (int cil = 0; cil < cn; ++cil) {
            // The input gradient's K channel c0 + cil: the first convolution's dy, or from the
            // split on the sibling's (its own channel ch of c_own, its own batch norm).
            const bool second = DGRAD && c0 + cil >= sib.split;
            const int ch = second ? c0 + cil - sib.split : c0 + cil, c_own = !DGRAD ? c_src : second ? c_src - sib.split : sib.split;
            for (int img = 0; img < images; ++img) {
                const long long plane0 = ((long long)(b0 + img) * c_own + ch) * hs * ws;
                float* tile_s = xs + (cil * ti + img) * halo;
                for (int r = warp; r < hr; r += warps) {
                    int iy = sy0 + r;
                    bool row_in = iy >= 0 && iy < hs;
                    for (int c = lane; c < hc; c += 32) {
                        int ix = sx0 + c;
                        bool in = row_in && ix >= 0 && ix < ws;
                        const long long i = plane0 + iy * ws + ix;
                        float v = in ? fear_load(second ? sib.src : src, i) : 0.0f;
                        if (!DGRAD && in && in_coef != nullptr) v = fear_stored(src, fear_bn_normalise(v, in_coef, ch));
                        const float* coef = second ? sib.bn_coef : bn_coef;
                        if (in && coef != nullptr) v = fear_bn_grad(v, second ? sib.bn_x : bn_x, coef, i, ch);
                        v = relu_src ? (v > 0.0f ? v : 0.0f) : v;
                        tile_s[r * hc + c] = fear_conv_round<MMA>(v);
                    }
                }
            }
        }
        // The chunk's weights as [channel][tap][cw], zeros past the last channel or tap.
        for (int e = threadIdx.x; e < cn * T * T * cw; e += blockDim.x) {
            int co = e & (cw - 1), rest = e >> (3 + glog2), t = rest % (T * T), cil = rest / (T * T);
            int ty = t / T, tx = t % T;
            float v = 0.0f;
            if (!DGRAD) {
                // Forward: cil is an input channel, co an output channel, (ty, tx) the tap.
                // Output channels from the split on are the sibling's rows.
                const int oc = co0 + co;
                if (oc < c_dst) v = oc < sib.split ? wt[((long long)oc * c_src + c0 + cil) * (T * T) + t] : sib.wt[((long long)(oc - sib.split) * c_src + c0 + cil) * (T * T) + t];
            } else {
                // Input gradient: cil is an output channel of the convolution, co an input channel;
                // correlation tap ty reads dy row qy + ty - offy, i.e. kernel row ky0 + P * (T-1-ty).
                // K channels from the split on are the sibling's output channels.
                int ky = ky0 + P * (T - 1 - ty), kx = kx0 + P * (T - 1 - tx);
                const bool second = c0 + cil >= sib.split;
                const float* wk = second ? sib.wt : wt;
                const int ck = second ? c0 + cil - sib.split : c0 + cil;
                if (co0 + co < c_dst && ky < k && kx < k) v = wk[(((long long)ck * cin + co0 + co) * k + ky) * k + kx];
            }
            wsh[e] = fear_conv_round<MMA>(v);
        }
        __syncthreads();
        if constexpr (on_mma) {
            if constexpr (MMA == FEAR_CONV_F16) fear_conv_mma_chunk_f16<T>(mma_acc, xs, wsh, mma_rows, cn, ti * halo, hc, cw, glog2);
            else fear_conv_mma_chunk<T, MMA>(mma_acc, xs, wsh, mma_rows, cn, ti * halo, hc, cw, glog2);
            continue;
        }
        // The MAC loop: FEAR_CONV_PIX x FEAR_CONV_CO outer products per (channel, tap).
        for (int cil = 0; cil < cn; ++cil) {
            const float* xc = xs + cil * ti * halo;
            const float* wc = wsh + cil * (T * T) * cw + cg * FEAR_CONV_CO;
            // One kernel row per iteration (its T taps unrolled): unrolling all T*T lets ptxas
            // hoist every tap's loads and run out of registers on some targets.
#pragma unroll 1
            for (int ty = 0; ty < T; ++ty) {
#pragma unroll
                for (int tx = 0; tx < T; ++tx) {
                    const float4 w0 = *reinterpret_cast<const float4*>(wc + (ty * T + tx) * cw);
                    const float4 w1 = *reinterpret_cast<const float4*>(wc + (ty * T + tx) * cw + 4);
                    const float wv[FEAR_CONV_CO] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
                    for (int j = 0; j < FEAR_CONV_PIX; ++j) {
                        float v = xc[sbase[j] + ty * hc + tx];
#pragma unroll
                        for (int c = 0; c < FEAR_CONV_CO; ++c) acc[j][c] += v * wv[c];
                    }
                }
            }
        }
    }
    // The tensor-core input gradient's epilogue reads each parked sum as it adds it: the 32 held in
    // registers besides dx's terms spilled on sm_90 (the two-gradient launch at f32 storage).
    constexpr bool parked_sums = on_mma && DGRAD;
    if constexpr (parked_sums) fear_conv_mma_park<MMA>(mma_acc, smem, glog2);
    else if constexpr (on_mma) fear_conv_mma_unpark<MMA>(mma_acc, acc, smem, glog2);
    // With the forward's batch-norm statistics, the accumulators are parked in shared memory first.
    const bool take_stats = !DGRAD && stats != nullptr;
    if (take_stats) fear_conv_park(acc, smem, dst);
    // Epilogue: the forward assigns y, the input gradient adds into dx (or, without `accumulate`,
    // assigns 0 + the sum: the bits a zeroed dx would end with, without reading it). With a mask,
    // the sum (as 0 + sum, the bits an unfused gradient buffer held) counts only where the mask
    // is positive: the fused ReLU's backward, bit for bit.
    // A forward's channel group from the split on is the sibling's output (the split is a multiple
    // of FEAR_CONV_CO: a group never straddles it); out_ch0 counts in the tensor stored to.
    const bool to_sibling = !DGRAD && co0 + cg * FEAR_CONV_CO >= sib.split;
    E* out = to_sibling ? sib.dst : dst;
    const int out_ch0 = co0 + cg * FEAR_CONV_CO - (to_sibling ? sib.split : 0);
    const int c_out = DGRAD ? c_dst : to_sibling ? c_dst - sib.split : sib.split;
#pragma unroll
    for (int j = 0; j < FEAR_CONV_PIX; ++j) {
        int img, oy, ox;
        if (slot(j, img, oy, ox) < 0) continue;
        E* at = out + (((long long)(b0 + img) * c_out + out_ch0) * hd + oy) * wd + ox;
#pragma unroll
        for (int c = 0; c < FEAR_CONV_CO; ++c) {
            if (out_ch0 + c >= c_out) break;
            const long long e = (long long)c * hd * wd;
            if (DGRAD) {
                const long long i = at - out + e;
                float g = 0.0f + (parked_sums ? fear_conv_parked(smem, j, c) : acc[j][c]);
                if (mask != nullptr) {
                    const float m = fear_load(mask, i);
                    g = (in_coef != nullptr ? fear_stored(mask, fear_bn_normalise(m, in_coef, out_ch0 + c)) : m) > 0.0f ? g : 0.0f;
                }
                float prior = accumulate ? fear_load(at, e) : 0.0f;
                if (terms.added != nullptr) prior = prior + fear_load(terms.added, i);
                float v = prior + g;
                if (terms.pooled != nullptr) v = v + fear_avg_pool3_adjoint_at(terms.pooled + (i - (long long)oy * wd - ox), oy, ox, hd, wd);
                fear_store(at, e, v);
            } else {
                fear_store(at, e, acc[j][c]);
            }
        }
    }
    if (take_stats) {
        // The statistics, from the parked values (a forward tile has one phase: the count is
        // images x rows x columns inside the output). A forward launch is all forward blocks,
        // so its block is blockIdx.x (read again here rather than keep `block` in a register).
        bool live[FEAR_CONV_PIX];
#pragma unroll
        for (int j = 0; j < FEAR_CONV_PIX; ++j) {
            int img, oy, ox;
            live[j] = slot(j, img, oy, ox) >= 0;
        }
        const double count = (double)images * min(tr, hd - qy0) * min(tc, wd - qx0);
        fear_conv_bn_partials(smem, live, stats, tp, tpix, cg, co0 + cg * FEAR_CONV_CO, c_dst, count, blockIdx.x / passes, gridDim.x / passes);
    }
}

// y = conv(x, w), or conv(relu(x), w) with `relu`. One block per (ti images, tile of tr x tc
// output pixels, pass of 8 << glog2 output channels); `chunk` input channels staged at a time
// (launch.rs picks the shapes and the dynamic shared memory size). With `stats`, each block also
// writes its batch-norm partials of y (fear_conv_bn_partials). With a sibling (wt2, y2 not null),
// cout counts both convolutions' channels and those from `split` on are y2 = conv(x, wt2), their
// statistics after the first's (split = cout without one). With `x_coef`, x is a batch norm's
// input and the convolution reads its output (fear_bn_normalise, before the ReLU): the batch norm
// applied as x is staged, not by a pass of its own.
//
// The kernel's parameters over the tensors' storage type E, the body, then one kernel per
// (storage, product): fear_conv_forward, fear_conv_forward_bf16, fear_conv_forward_f16, and the TF32 and BF16 pairs below.
#define FEAR_CONV_FORWARD_PARAMS(E)                                                                                                     \
    const E* __restrict__ x, const float* __restrict__ wt, E* __restrict__ y, int n, int cin, int h, int w, int cout, int k, int stride, \
        int pad, int oh, int ow, int ti, int tr, int tc, int chunk, int glog2, int relu, double* __restrict__ stats,                       \
        const float* __restrict__ wt2, E* __restrict__ y2, int split, const float* __restrict__ x_coef
#define FEAR_CONV_FORWARD_ARGS x, wt, y, n, cin, h, w, cout, k, stride, pad, oh, ow, ti, tr, tc, chunk, glog2, relu, stats, wt2, y2, split, x_coef

template <typename E, int MMA>
__device__ __forceinline__ void fear_conv_forward_body(FEAR_CONV_FORWARD_PARAMS(E)) {
    const FearConvSibling<E> sib{nullptr, wt2, y2, nullptr, nullptr, split};
    const FearDxTerms<E> none{nullptr, nullptr};
    if (k == 3 && stride == 1) fear_conv_tile<E, 3, 1, 1, false, MMA>(blockIdx.x, x, wt, y, n, cin, h, w, cout, oh, ow, k, pad, cin, ti, tr, tc, chunk, glog2, 0, relu, nullptr, nullptr, nullptr, stats, sib, none, x_coef);
    else if (k == 3 && stride == 2) fear_conv_tile<E, 3, 2, 1, false, MMA>(blockIdx.x, x, wt, y, n, cin, h, w, cout, oh, ow, k, pad, cin, ti, tr, tc, chunk, glog2, 0, relu, nullptr, nullptr, nullptr, stats, sib, none, x_coef);
    else if (k == 1 && stride == 1) fear_conv_tile<E, 1, 1, 1, false, MMA>(blockIdx.x, x, wt, y, n, cin, h, w, cout, oh, ow, k, pad, cin, ti, tr, tc, chunk, glog2, 0, relu, nullptr, nullptr, nullptr, stats, sib, none, x_coef);
    else if (k == 1 && stride == 2) fear_conv_tile<E, 1, 2, 1, false, MMA>(blockIdx.x, x, wt, y, n, cin, h, w, cout, oh, ow, k, pad, cin, ti, tr, tc, chunk, glog2, 0, relu, nullptr, nullptr, nullptr, stats, sib, none, x_coef);
}

extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_forward(FEAR_CONV_FORWARD_PARAMS(float)) { fear_conv_forward_body<float, FEAR_CONV_FP32>(FEAR_CONV_FORWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_forward_bf16(FEAR_CONV_FORWARD_PARAMS(fear_bf16)) { fear_conv_forward_body<fear_bf16, FEAR_CONV_FP32>(FEAR_CONV_FORWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_forward_f16(FEAR_CONV_FORWARD_PARAMS(fear_f16)) { fear_conv_forward_body<fear_f16, FEAR_CONV_FP32>(FEAR_CONV_FORWARD_ARGS); }

// fear_conv_forward with both operands rounded to TF32 (x after the ReLU, and w) and multiplied on
// tensor cores (sm_80+; the FMA loop on the sm_70 build): the same launch shape and arguments,
// and at least FEAR_CONV_THREADS * 32 floats of dynamic shared memory (launch.rs). A bfloat16 x is
// exact in TF32: only w's rounding is left.
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_forward_tf32(FEAR_CONV_FORWARD_PARAMS(float)) { fear_conv_forward_body<float, FEAR_CONV_TF32>(FEAR_CONV_FORWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_forward_tf32_bf16(FEAR_CONV_FORWARD_PARAMS(fear_bf16)) { fear_conv_forward_body<fear_bf16, FEAR_CONV_TF32>(FEAR_CONV_FORWARD_ARGS); }

// fear_conv_forward with both operands rounded to bfloat16 (x after the ReLU, and w) and multiplied
// with mma.sync.m16n8k8.bf16, FP32 accumulate (sm_80+; the FMA loop over the same rounded operands
// on the sm_70 build); launched as the TF32 pair is. Named for its product, "bf16mma", because the
// `_bf16` suffix names the tensors' storage (stored_variant appends it): fear_conv_forward_bf16 is
// the FP32 product on bfloat16 tensors, fear_conv_forward_bf16mma_bf16 the BF16 product on them
// (where x is already a bfloat16: only w's rounding is left).
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_forward_bf16mma(FEAR_CONV_FORWARD_PARAMS(float)) { fear_conv_forward_body<float, FEAR_CONV_BF16>(FEAR_CONV_FORWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_forward_bf16mma_bf16(FEAR_CONV_FORWARD_PARAMS(fear_bf16)) { fear_conv_forward_body<fear_bf16, FEAR_CONV_BF16>(FEAR_CONV_FORWARD_ARGS); }

// fear_conv_forward with both operands rounded to IEEE halves (x after the ReLU, and w) and
// multiplied with mma.sync.m8n8k4.f16, FP32 accumulate (sm_70+: the V100's tensor cores; later
// GPUs run the instruction too, bf16 being their natural 16-bit product); launched as the TF32
// pair is. `_f16`: on tensors stored as halves (`--precision fp16`), where only w's rounding is left.
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_forward_f16mma(FEAR_CONV_FORWARD_PARAMS(float)) { fear_conv_forward_body<float, FEAR_CONV_F16>(FEAR_CONV_FORWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_forward_f16mma_f16(FEAR_CONV_FORWARD_PARAMS(fear_f16)) { fear_conv_forward_body<fear_f16, FEAR_CONV_F16>(FEAR_CONV_FORWARD_ARGS); }

// dx += conv-transpose of dy (dx = 0 + it without `accumulate`), where mask > 0 when a mask is
// given (the fused ReLU's input). One block per (ti images, phase of dx, tile of its phase grid,
// pass of input channels); the tile is tr x tc pixels of the phase grid (every stride-th pixel).
// With a sibling (dy2 not null), cout counts both convolutions' output channels and dx is the sum
// of both input gradients: K channels from `split` on are dy2's, through wt2 and its batch norm.
// With `mask_coef`, the mask is a batch norm's input, compared through it (fear_bn_normalise).
template <typename E, int MMA>
__device__ __forceinline__ void fear_conv_dgrad(int block, const E* __restrict__ dy, const float* __restrict__ wt, E* __restrict__ dx, int n,
                                                int cin, int h, int w, int cout, int k, int stride, int pad, int oh, int ow, int ti, int tr, int tc, int chunk,
                                                int glog2, int accumulate, const E* __restrict__ mask, const E* __restrict__ bn_x,
                                                const float* __restrict__ bn_coef, FearConvSibling<E> sib, FearDxTerms<E> terms,
                                                const float* __restrict__ mask_coef) {
    if (k == 3 && stride == 1) fear_conv_tile<E, 3, 1, 1, true, MMA>(block, dy, wt, dx, n, cout, oh, ow, cin, h, w, k, pad, cin, ti, tr, tc, chunk, glog2, accumulate, 0, mask, bn_x, bn_coef, nullptr, sib, terms, mask_coef);
    else if (k == 3 && stride == 2) fear_conv_tile<E, 2, 1, 2, true, MMA>(block, dy, wt, dx, n, cout, oh, ow, cin, h, w, k, pad, cin, ti, tr, tc, chunk, glog2, accumulate, 0, mask, bn_x, bn_coef, nullptr, sib, terms, mask_coef);
    else if (k == 1 && stride == 1) fear_conv_tile<E, 1, 1, 1, true, MMA>(block, dy, wt, dx, n, cout, oh, ow, cin, h, w, k, pad, cin, ti, tr, tc, chunk, glog2, accumulate, 0, mask, bn_x, bn_coef, nullptr, sib, terms, mask_coef);
    else if (k == 1 && stride == 2) fear_conv_tile<E, 1, 1, 2, true, MMA>(block, dy, wt, dx, n, cout, oh, ow, cin, h, w, k, pad, cin, ti, tr, tc, chunk, glog2, accumulate, 0, mask, bn_x, bn_coef, nullptr, sib, terms, mask_coef);
}

#define FEAR_CONV_BACKWARD_INPUT_PARAMS(E)                                                                                                  \
    const E* __restrict__ dy, const float* __restrict__ wt, E* __restrict__ dx, int n, int cin, int h, int w, int cout, int k, int stride,   \
        int pad, int oh, int ow, int ti, int tr, int tc, int chunk, int glog2, int accumulate, const E* __restrict__ mask,                    \
        const E* __restrict__ bn_x, const float* __restrict__ bn_coef, const E* __restrict__ dy2, const float* __restrict__ wt2,            \
        const E* __restrict__ bn_x2, const float* __restrict__ bn_coef2, int split, const float* __restrict__ mask_coef
#define FEAR_CONV_BACKWARD_INPUT_ARGS \
    dy, wt, dx, n, cin, h, w, cout, k, stride, pad, oh, ow, ti, tr, tc, chunk, glog2, accumulate, mask, bn_x, bn_coef, dy2, wt2, bn_x2, bn_coef2, split, mask_coef

template <typename E, int MMA>
__device__ __forceinline__ void fear_conv_backward_input_body(FEAR_CONV_BACKWARD_INPUT_PARAMS(E)) {
    const FearConvSibling<E> sib{dy2, wt2, nullptr, bn_x2, bn_coef2, split};
    fear_conv_dgrad<E, MMA>(blockIdx.x, dy, wt, dx, n, cin, h, w, cout, k, stride, pad, oh, ow, ti, tr, tc, chunk, glog2, accumulate, mask, bn_x, bn_coef, sib,
                       FearDxTerms<E>{nullptr, nullptr}, mask_coef);
}

extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_input(FEAR_CONV_BACKWARD_INPUT_PARAMS(float)) { fear_conv_backward_input_body<float, FEAR_CONV_FP32>(FEAR_CONV_BACKWARD_INPUT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_input_bf16(FEAR_CONV_BACKWARD_INPUT_PARAMS(fear_bf16)) { fear_conv_backward_input_body<fear_bf16, FEAR_CONV_FP32>(FEAR_CONV_BACKWARD_INPUT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_input_f16(FEAR_CONV_BACKWARD_INPUT_PARAMS(fear_f16)) { fear_conv_backward_input_body<fear_f16, FEAR_CONV_FP32>(FEAR_CONV_BACKWARD_INPUT_ARGS); }

// The input gradient with both operands (dy as read, through the batch norm's backward, and w)
// rounded to TF32 / bfloat16 as staged and multiplied on tensor cores (sm_80+; the FMA loop over
// the same rounded operands on sm_70), as the forwards of those names are: the same tile, with
// at least FEAR_CONV_THREADS * 32 floats of dynamic shared memory (launch.rs).
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_input_tf32(FEAR_CONV_BACKWARD_INPUT_PARAMS(float)) { fear_conv_backward_input_body<float, FEAR_CONV_TF32>(FEAR_CONV_BACKWARD_INPUT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_input_tf32_bf16(FEAR_CONV_BACKWARD_INPUT_PARAMS(fear_bf16)) { fear_conv_backward_input_body<fear_bf16, FEAR_CONV_TF32>(FEAR_CONV_BACKWARD_INPUT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_input_bf16mma(FEAR_CONV_BACKWARD_INPUT_PARAMS(float)) { fear_conv_backward_input_body<float, FEAR_CONV_BF16>(FEAR_CONV_BACKWARD_INPUT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_input_bf16mma_bf16(FEAR_CONV_BACKWARD_INPUT_PARAMS(fear_bf16)) { fear_conv_backward_input_body<fear_bf16, FEAR_CONV_BF16>(FEAR_CONV_BACKWARD_INPUT_ARGS); }
// The same with the operands rounded to IEEE halves and multiplied with mma.sync.m8n8k4.f16
// (sm_70+; fear_conv_mma_chunk_f16, as the FP16 forward): on f32 tensors and, `_f16`, on halves.
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_input_f16mma(FEAR_CONV_BACKWARD_INPUT_PARAMS(float)) { fear_conv_backward_input_body<float, FEAR_CONV_F16>(FEAR_CONV_BACKWARD_INPUT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_input_f16mma_f16(FEAR_CONV_BACKWARD_INPUT_PARAMS(fear_f16)) { fear_conv_backward_input_body<fear_f16, FEAR_CONV_F16>(FEAR_CONV_BACKWARD_INPUT_ARGS); }

// The tensor-core weight gradients' MAC loop over one staged item (tr x tc pixels): the block's
// FEAR_WGRAD_COP x (FEAR_WGRAD_CI x K*K) output tile is, per warp, the m16n8 tiles of 16 output
// channels (rows 16 warp ..) by the 8 input channels of each tap (one tile per tap), and K runs
// over the item's pixels, 8 per k-step (pixels past `pixels` read as zeros on both sides). A is
// dy transposed ([channel][pixel], staged as [pixel][FEAR_WGRAD_DY_STRIDE]), fetched once per
// k-step for every tap; B is x at each pixel's window shifted by the tap. The operands are
// rounded as staged, so their bits go as they are (tf32: one per register; bf16: two pixels
// per register, the lower in the low half).
template <int K, int S, int MMA>
__device__ __forceinline__ void fear_conv_wgrad_mma_item(float (&d)[K * K][4], const float* dys, const float* xs, int pixels, int tc, int hc, int halo) {
    constexpr bool bf16 = MMA == FEAR_CONV_BF16;
    const int lane = threadIdx.x & 31, co_base = 16 * (threadIdx.x >> 5);
    auto bits = [](float v) { return (unsigned)__float_as_int(v); };
    // B's column (an input channel) is the lane's whole k-loop through.
    const float* xc = xs + (bf16 ? fear_m16n8k8_b16_col(lane, 0) : fear_m16n8k8_b32_col(lane, 0)) * halo;
    auto window = [&](int p) { return (p / tc) * S * hc + (p % tc) * S; };
#pragma unroll 1
    for (int p0 = 0; p0 < pixels; p0 += 8) {
        // A: dy at this lane's pixels (columns) and output channels (rows).
        auto a_at = [&](int row, int col) { return p0 + col < pixels ? dys[(p0 + col) * FEAR_WGRAD_DY_STRIDE + co_base + row] : 0.0f; };
        // B: this lane's two pixels (rows) and their windows.
        const int pb0 = p0 + (bf16 ? fear_m16n8k8_b16_row(lane, 0) : fear_m16n8k8_b32_row(lane, 0));
        const int pb1 = p0 + (bf16 ? fear_m16n8k8_b16_row(lane, 1) : fear_m16n8k8_b32_row(lane, 1));
        const bool b0 = pb0 < pixels, b1 = pb1 < pixels;
        const float* xb0 = xc + (b0 ? window(pb0) : 0);
        const float* xb1 = xc + (b1 ? window(pb1) : 0);
        if constexpr (bf16) {
            unsigned a[2];
#pragma unroll
            for (int h = 0; h < 2; ++h)
                a[h] = fear_pack_bf16_exact(a_at(fear_m16n8k8_a16_row(lane, 2 * h), fear_m16n8k8_a16_col(lane, 2 * h)),
                                            a_at(fear_m16n8k8_a16_row(lane, 2 * h + 1), fear_m16n8k8_a16_col(lane, 2 * h + 1)));
#pragma unroll
            for (int t = 0; t < K * K; ++t) {
                const int shift = (t / K) * hc + t % K;
                const unsigned b = fear_pack_bf16_exact(b0 ? xb0[shift] : 0.0f, b1 ? xb1[shift] : 0.0f);
                fear_mma_bf16_m16n8k8(d[t], a, b, d[t]);
            }
        } else {
            unsigned a[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = bits(a_at(fear_m16n8k8_a32_row(lane, i), fear_m16n8k8_a32_col(lane, i)));
#pragma unroll
            for (int t = 0; t < K * K; ++t) {
                const int shift = (t / K) * hc + t % K;
                const unsigned b[2] = {b0 ? bits(xb0[shift]) : 0u, b1 ? bits(xb1[shift]) : 0u};
                fear_mma_tf32_m16n8k8(d[t], a, b, d[t]);
            }
        }
    }
}

// The FP16 weight gradient's MAC loop (mma.sync.m8n8k4.f16, sm_70+, FP32 accumulate) over one
// staged item: the same output tile per warp as fear_conv_wgrad_mma_item (16 output channels by
// the 8 input channels of each tap), with the taps taken two at a time: quadpair q of one m8n8k4
// computes rows 8 (q & 1) .. + 7 of tap 2 pair + q / 2, so the K*K taps are (K*K + 1) / 2 pairs
// (the last pair's second tap, past K*K, multiplies zeros and is not stored: half of a 1x1
// convolution's instructions), each lane keeps 8 accumulators a pair (d[2 pair], d[2 pair + 1]:
// as many as m16n8k8 keeps, plus the unused half), and a k-step is 4 pixels. Thread th of a
// quadpair holds A's row th (its output channel: dy at the step's 4 pixels) and B's column th
// (input channel th: x at those pixels' windows shifted by its tap), two pixels per register;
// the operands are halves already as staged (fear_pack_f16_exact).
template <int K>
__device__ __forceinline__ constexpr int fear_conv_wgrad_f16_pairs() { return (K * K + 1) / 2; }

template <int K, int S>
__device__ __forceinline__ void fear_conv_wgrad_mma_item_f16(float (&d)[2 * fear_conv_wgrad_f16_pairs<K>()][4], const float* dys, const float* xs, int pixels, int tc,
                                                             int hc, int halo) {
    const int lane = threadIdx.x & 31, q = fear_m8n8k4_quadpair(lane), th = fear_m8n8k4_thread(lane);
    const float* dyc = dys + 16 * (threadIdx.x >> 5) + 8 * (q & 1) + th;  // A's row: this thread's output channel
    const float* xc = xs + th * halo;                                      // B's column: input channel th
#pragma unroll 1
    for (int p0 = 0; p0 < pixels; p0 += 4) {
        bool in[4];
        int win[4];
        float av[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int p = p0 + j;
            in[j] = p < pixels;
            win[j] = in[j] ? (p / tc) * S * hc + (p % tc) * S : 0;
            av[j] = in[j] ? dyc[p * FEAR_WGRAD_DY_STRIDE] : 0.0f;
        }
        const unsigned a[2] = {fear_pack_f16_exact(av[0], av[1]), fear_pack_f16_exact(av[2], av[3])};
#pragma unroll
        for (int pair = 0; pair < fear_conv_wgrad_f16_pairs<K>(); ++pair) {
            const int t = 2 * pair + (q >> 1), shift = (t / K) * hc + t % K;
            const bool tap_in = t < K * K;
            float bv[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) bv[j] = in[j] && tap_in ? xc[win[j] + shift] : 0.0f;
            const unsigned b[2] = {fear_pack_f16_exact(bv[0], bv[1]), fear_pack_f16_exact(bv[2], bv[3])};
            fear_conv_mma_pair_f16(d, pair, a, b);
        }
    }
}

// The tensor-core weight gradients' accumulators per lane: one m16n8 tile per tap (m16n8k8), or
// two per tap pair (FP16's m8n8k4, fear_conv_wgrad_mma_item_f16).
template <int K, int MMA>
__device__ __forceinline__ constexpr int fear_conv_wgrad_mma_tiles() { return MMA == FEAR_CONV_F16 ? 2 * fear_conv_wgrad_f16_pairs<K>() : K * K; }

// The tensor-core weight gradients' accumulators into the split's slot [cout][cin][K * K].
// m16n8k8: tile t of the warp is tap t, row = output channel co0 + 16 warp + the C map's row,
// column = input channel ci0 + its column. FP16 (m8n8k4): d[2 pair + e / 4][e % 4] is element e
// of the lane's quadpair q, tap 2 pair + q / 2, row 8 (q & 1) + the C map's row.
template <int K, int MMA>
__device__ __forceinline__ void fear_conv_wgrad_mma_store(const float (&d)[fear_conv_wgrad_mma_tiles<K, MMA>()][4], float* __restrict__ slot, int co0, int ci0, int cout,
                                                          int cin) {
    const int lane = threadIdx.x & 31, co_base = co0 + 16 * (threadIdx.x >> 5);
    auto put = [&](int co, int ci, int t, float v) {
        if (co < cout && ci < cin) slot[((long long)co * cin + ci) * K * K + t] = v;
    };
    if constexpr (MMA == FEAR_CONV_F16) {
        const int q = fear_m8n8k4_quadpair(lane);
#pragma unroll
        for (int pair = 0; pair < fear_conv_wgrad_f16_pairs<K>(); ++pair) {
            const int t = 2 * pair + (q >> 1);
            if (t >= K * K) continue;
#pragma unroll
            for (int e = 0; e < 8; ++e) put(co_base + 8 * (q & 1) + fear_m8n8k4_c_row(lane, e), ci0 + fear_m8n8k4_c_col(lane, e), t, d[2 * pair + (e >> 2)][e & 3]);
        }
    } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
#pragma unroll
            for (int t = 0; t < K * K; ++t) put(co_base + fear_m16n8k8_c_row(lane, e), ci0 + fear_m16n8k8_c_col(lane, e), t, d[t][e]);
        }
    }
}

// Partial dw of one block: FEAR_WGRAD_COP output channels x FEAR_WGRAD_CI input channels x K*K
// taps, summed over the block's share of (image, pixel tile) items. Each thread owns
// FEAR_WGRAD_CO output channels of one input channel for every tap; per pixel it reads one float4
// of dy and K*K inputs from shared memory for 4*K*K FMAs.
template <typename E, int K, int S, int MMA>
__device__ __forceinline__ void fear_conv_wgrad_tile(int block, const E* __restrict__ x, const E* __restrict__ dy,
                                                     float* __restrict__ partial, int n, int cin, int h, int w,
                                                     int cout, int pad, int oh, int ow, int tr, int tc, int splits,
                                                     int relu_x, const E* __restrict__ bn_x, const float* __restrict__ bn_coef,
                                                     FearConvSibling<E> sib, const float* __restrict__ x_coef) {
    FEAR_DYNAMIC_SHARED(float, smem);
    const int ci_blocks = (cin + FEAR_WGRAD_CI - 1) / FEAR_WGRAD_CI;
    const int co_blocks = (cout + FEAR_WGRAD_COP - 1) / FEAR_WGRAD_COP;
    int bid = block;
    const int ci0 = bid % ci_blocks * FEAR_WGRAD_CI;
    bid /= ci_blocks;
    const int co0 = bid % co_blocks * FEAR_WGRAD_COP;
    const int split = bid / co_blocks;
    const int tiles_x = (ow + tc - 1) / tc, tiles = tiles_x * ((oh + tr - 1) / tr);
    const long long items = (long long)n * tiles;
    const int first = (int)(items * split / splits), last = (int)(items * (split + 1) / splits);
    const int hr = (tr - 1) * S + K, hc = (tc - 1) * S + K, halo = hr * hc;
    float* dys = smem;                                  // [tr * tc][FEAR_WGRAD_DY_STRIDE]
    float* xs = smem + tr * tc * FEAR_WGRAD_DY_STRIDE;  // [FEAR_WGRAD_CI][halo]
    const int cq = threadIdx.x & 15, cil = threadIdx.x >> 4;  // 16 channel quads x 8 input channels
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    float acc[FEAR_WGRAD_CO][K * K];
#pragma unroll
    for (int c = 0; c < FEAR_WGRAD_CO; ++c)
#pragma unroll
        for (int t = 0; t < K * K; ++t) acc[c][t] = 0.0f;
    // The tensor-core kernels' accumulators (fear_conv_wgrad_mma_item, _f16); unused otherwise.
    constexpr bool on_mma = fear_conv_on_mma<MMA>();
    constexpr int mma_tiles = fear_conv_wgrad_mma_tiles<K, MMA>();
    float mma_acc[mma_tiles][4];
#pragma unroll
    for (int t = 0; t < mma_tiles; ++t)
#pragma unroll
        for (int e = 0; e < 4; ++e) mma_acc[t][e] = 0.0f;

    for (int item = first; item < last; ++item) {
        const int b = item / tiles, tile = item % tiles;
        const int oy0 = tile / tiles_x * tr, ox0 = tile % tiles_x * tc;
        const int sy0 = oy0 * S - pad, sx0 = ox0 * S - pad;
        __syncthreads();  // the previous item's readers are done
        // dy of the tile, transposed to [pixel][channel]; zeros for pixels or channels outside.
        for (int co = warp; co < FEAR_WGRAD_COP; co += warps) {
            // Rows from the split on are the sibling's: its dy (channel ch of c_own) and batch norm.
            const bool second = co0 + co >= sib.split;
            const E* from = second ? sib.src : dy;
            const E* from_bn_x = second ? sib.bn_x : bn_x;
            const float* from_bn_coef = second ? sib.bn_coef : bn_coef;
            const int ch = co0 + co - (second ? sib.split : 0), c_own = second ? cout - sib.split : sib.split;
            const long long plane0 = ((long long)b * c_own + ch) * oh * ow;
            bool co_in = co0 + co < cout;
            for (int ty = 0; ty < tr; ++ty) {
                int oy = oy0 + ty;
                for (int tx = lane; tx < tc; tx += 32) {
                    int ox = ox0 + tx;
                    bool in = co_in && oy < oh && ox < ow;
                    float v = in ? fear_load(from, plane0 + oy * ow + ox) : 0.0f;
                    if (in && from_bn_coef != nullptr) v = fear_bn_grad(v, from_bn_x, from_bn_coef, plane0 + oy * ow + ox, ch);
                    dys[(ty * tc + tx) * FEAR_WGRAD_DY_STRIDE + co] = fear_conv_round<MMA>(v);
                }
            }
        }
        // x of the tile's windows, with the halo; zeros outside the image or past the last channel.
        for (int ci = 0; ci < FEAR_WGRAD_CI; ++ci) {
            const E* plane = x + ((long long)b * cin + ci0 + ci) * h * w;
            bool ci_in = ci0 + ci < cin;
            for (int r = warp; r < hr; r += warps) {
                int iy = sy0 + r;
                bool row_in = ci_in && iy >= 0 && iy < h;
                for (int c = lane; c < hc; c += 32) {
                    int ix = sx0 + c;
                    const bool in = row_in && ix >= 0 && ix < w;
                    float v = in ? fear_load(plane, iy * w + ix) : 0.0f;
                    if (in && x_coef != nullptr) v = fear_stored(x, fear_bn_normalise(v, x_coef, ci0 + ci));
                    xs[ci * halo + r * hc + c] = fear_conv_round<MMA>(relu_x ? (v > 0.0f ? v : 0.0f) : v);
                }
            }
        }
        __syncthreads();
        if constexpr (on_mma) {
            if constexpr (MMA == FEAR_CONV_F16) fear_conv_wgrad_mma_item_f16<K, S>(mma_acc, dys, xs, tr * tc, tc, hc, halo);
            else fear_conv_wgrad_mma_item<K, S, MMA>(mma_acc, dys, xs, tr * tc, tc, hc, halo);
            continue;
        }
        const float* xc = xs + cil * halo;
        for (int ty = 0; ty < tr; ++ty) {
            for (int tx = 0; tx < tc; ++tx) {
                const float4 g = *reinterpret_cast<const float4*>(dys + (ty * tc + tx) * FEAR_WGRAD_DY_STRIDE + cq * FEAR_WGRAD_CO);
                const float gv[FEAR_WGRAD_CO] = {g.x, g.y, g.z, g.w};
                const float* xp = xc + ty * S * hc + tx * S;
#pragma unroll
                for (int ky = 0; ky < K; ++ky) {
#pragma unroll
                    for (int kx = 0; kx < K; ++kx) {
                        float v = xp[ky * hc + kx];
#pragma unroll
                        for (int c = 0; c < FEAR_WGRAD_CO; ++c) acc[c][ky * K + kx] += gv[c] * v;
                    }
                }
            }
        }
    }
    // This split's slot of the workspace, laid out like dw: [cout][cin][K * K].
    float* slot = partial + (long long)split * cout * cin * K * K;
    if constexpr (on_mma) {
        fear_conv_wgrad_mma_store<K, MMA>(mma_acc, slot, co0, ci0, cout, cin);
        return;
    }
    const int ci = ci0 + cil;
    if (ci >= cin) return;
#pragma unroll
    for (int c = 0; c < FEAR_WGRAD_CO; ++c) {
        int co = co0 + cq * FEAR_WGRAD_CO + c;
        if (co >= cout) break;
#pragma unroll
        for (int t = 0; t < K * K; ++t) slot[((long long)co * cin + ci) * K * K + t] = acc[c][t];
    }
}

// Partial weight gradients: one block per (split of the pixel tiles, pass of FEAR_WGRAD_COP output
// channels, FEAR_WGRAD_CI input channels), into `partial` [splits][cout][cin][k][k]; x read as
// relu(x) with `relu` (a fused ReLU). With a sibling (dy2 not null), cout counts both
// convolutions' rows, those from `split` on from dy2 through its batch norm. With `x_coef`, x is
// read through a batch norm (fear_bn_normalise) before the ReLU.
template <typename E, int MMA>
__device__ __forceinline__ void fear_conv_wgrad(int block, const E* __restrict__ x, const E* __restrict__ dy, float* __restrict__ partial, int n,
                                                int cin, int h, int w, int cout, int k, int stride, int pad, int oh, int ow, int tr, int tc, int splits, int relu,
                                                const E* __restrict__ bn_x, const float* __restrict__ bn_coef, FearConvSibling<E> sib,
                                                const float* __restrict__ x_coef) {
    if (k == 3 && stride == 1) fear_conv_wgrad_tile<E, 3, 1, MMA>(block, x, dy, partial, n, cin, h, w, cout, pad, oh, ow, tr, tc, splits, relu, bn_x, bn_coef, sib, x_coef);
    else if (k == 3 && stride == 2) fear_conv_wgrad_tile<E, 3, 2, MMA>(block, x, dy, partial, n, cin, h, w, cout, pad, oh, ow, tr, tc, splits, relu, bn_x, bn_coef, sib, x_coef);
    else if (k == 1 && stride == 1) fear_conv_wgrad_tile<E, 1, 1, MMA>(block, x, dy, partial, n, cin, h, w, cout, pad, oh, ow, tr, tc, splits, relu, bn_x, bn_coef, sib, x_coef);
    else if (k == 1 && stride == 2) fear_conv_wgrad_tile<E, 1, 2, MMA>(block, x, dy, partial, n, cin, h, w, cout, pad, oh, ow, tr, tc, splits, relu, bn_x, bn_coef, sib, x_coef);
}

#define FEAR_CONV_BACKWARD_WEIGHT_PARAMS(E)                                                                                                 \
    const E* __restrict__ x, const E* __restrict__ dy, float* __restrict__ partial, int n, int cin, int h, int w, int cout, int k, int stride, \
        int pad, int oh, int ow, int tr, int tc, int splits, int relu, const E* __restrict__ bn_x, const float* __restrict__ bn_coef,        \
        const E* __restrict__ dy2, const E* __restrict__ bn_x2, const float* __restrict__ bn_coef2, int split, const float* __restrict__ x_coef
#define FEAR_CONV_BACKWARD_WEIGHT_ARGS x, dy, partial, n, cin, h, w, cout, k, stride, pad, oh, ow, tr, tc, splits, relu, bn_x, bn_coef, dy2, bn_x2, bn_coef2, split, x_coef

template <typename E, int MMA>
__device__ __forceinline__ void fear_conv_backward_weight_body(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(E)) {
    const FearConvSibling<E> sib{dy2, nullptr, nullptr, bn_x2, bn_coef2, split};
    fear_conv_wgrad<E, MMA>(blockIdx.x, x, dy, partial, n, cin, h, w, cout, k, stride, pad, oh, ow, tr, tc, splits, relu, bn_x, bn_coef, sib, x_coef);
}

extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS, FEAR_WGRAD_MIN_BLOCKS) fear_conv_backward_weight(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(float)) { fear_conv_backward_weight_body<float, FEAR_CONV_FP32>(FEAR_CONV_BACKWARD_WEIGHT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS, FEAR_WGRAD_MIN_BLOCKS) fear_conv_backward_weight_bf16(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(fear_bf16)) { fear_conv_backward_weight_body<fear_bf16, FEAR_CONV_FP32>(FEAR_CONV_BACKWARD_WEIGHT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS, FEAR_WGRAD_MIN_BLOCKS) fear_conv_backward_weight_f16(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(fear_f16)) { fear_conv_backward_weight_body<fear_f16, FEAR_CONV_FP32>(FEAR_CONV_BACKWARD_WEIGHT_ARGS); }

// The weight gradient with both operands (dy as read, through the batch norm's backward, and x as
// read: normalised, after the ReLU) rounded to TF32 / bfloat16 as staged and multiplied on tensor
// cores (fear_conv_wgrad_mma_item; sm_80+, the FMA loop over the same rounded operands on sm_70).
extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS, FEAR_WGRAD_MIN_BLOCKS) fear_conv_backward_weight_tf32(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(float)) { fear_conv_backward_weight_body<float, FEAR_CONV_TF32>(FEAR_CONV_BACKWARD_WEIGHT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS, FEAR_WGRAD_MIN_BLOCKS) fear_conv_backward_weight_tf32_bf16(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(fear_bf16)) { fear_conv_backward_weight_body<fear_bf16, FEAR_CONV_TF32>(FEAR_CONV_BACKWARD_WEIGHT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS, FEAR_WGRAD_MIN_BLOCKS) fear_conv_backward_weight_bf16mma(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(float)) { fear_conv_backward_weight_body<float, FEAR_CONV_BF16>(FEAR_CONV_BACKWARD_WEIGHT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS, FEAR_WGRAD_MIN_BLOCKS) fear_conv_backward_weight_bf16mma_bf16(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(fear_bf16)) { fear_conv_backward_weight_body<fear_bf16, FEAR_CONV_BF16>(FEAR_CONV_BACKWARD_WEIGHT_ARGS); }
// The same with the operands rounded to IEEE halves, multiplied with mma.sync.m8n8k4.f16 (sm_70+;
// fear_conv_wgrad_mma_item_f16): on f32 tensors and, `_f16`, on halves.
extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS, FEAR_WGRAD_MIN_BLOCKS) fear_conv_backward_weight_f16mma(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(float)) { fear_conv_backward_weight_body<float, FEAR_CONV_F16>(FEAR_CONV_BACKWARD_WEIGHT_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_WGRAD_THREADS, FEAR_WGRAD_MIN_BLOCKS) fear_conv_backward_weight_f16mma_f16(FEAR_CONV_BACKWARD_WEIGHT_PARAMS(fear_f16)) { fear_conv_backward_weight_body<fear_f16, FEAR_CONV_F16>(FEAR_CONV_BACKWARD_WEIGHT_ARGS); }

// dw += the sum of the splits' partials, split 0 first: the same bits on every run, and whichever
// launch runs it (each element's sum is one thread's, in one order). With a sibling (dw2 not null),
// elements from `split` on (its rows) go to dw2. Block `block` of `blocks` (grid-stride).
__device__ __forceinline__ void fear_conv_sum_partials(int block, int blocks, const float* __restrict__ partial, float* __restrict__ dw, int len,
                                                       int splits, float* __restrict__ dw2, int split) {
    for (int i = block * blockDim.x + threadIdx.x; i < len; i += blocks * blockDim.x) {
        float s = 0.0f;
        for (int p = 0; p < splits; ++p) s += partial[(long long)p * len + i];
        if (i < split) dw[i] += s;
        else dw2[i - split] += s;
    }
}

// Both gradients of a convolution in one launch (the GPU plan, when both are needed): blocks
// [0, input_blocks) compute dx as fear_conv_backward_input does, the rest dw's partials as
// fear_conv_backward_weight does. They read the same dy and nothing of each other: one launch
// instead of two, and the halves fill the GPU together (an 8x8 layer alone has few blocks). With a
// sibling, both halves take it (see fear_conv_backward_input and fear_conv_backward_weight). dx's
// other terms (FearDxTerms: dx_added, dx_pooled, or nulls) are added in the input gradient's epilogue.
// With `x_coef`, x is read through a batch norm (the weight gradient's x, the input gradient's mask).
//
// Deferred sums (the GPU plan): `sum_blocks` more blocks after the weight gradient's sum the
// partials an earlier launch left at `sum_partial` into sum_dw (and sum_dw2 from `sum_split` on),
// as fear_conv_backward_weight_reduce would have: nothing reads a weight gradient before the
// update, so the sum rides along here instead of taking a launch of its own. The earlier launch's
// partials are in the other slot of the scratch than this one's (launch.rs).
static_assert(FEAR_CONV_THREADS == FEAR_WGRAD_THREADS, "fear_conv_backward runs both gradients' blocks at one size");
#define FEAR_CONV_BACKWARD_PARAMS(E)                                                                                                           \
    const E* __restrict__ x, const E* __restrict__ dy, const float* __restrict__ wt, E* __restrict__ dx, float* __restrict__ partial, int n, int cin, \
        int h, int w, int cout, int k, int stride, int pad, int oh, int ow, int ti, int tr, int tc, int chunk, int glog2, int accumulate,          \
        const E* __restrict__ mask, int wgrad_tr, int wgrad_tc, int splits, int relu, const E* __restrict__ bn_x, const float* __restrict__ bn_coef, \
        int input_blocks, const E* __restrict__ dy2, const float* __restrict__ wt2, const E* __restrict__ bn_x2, const float* __restrict__ bn_coef2, \
        int split, int wgrad_blocks, const float* __restrict__ sum_partial, float* __restrict__ sum_dw, int sum_len, int sum_splits,               \
        float* __restrict__ sum_dw2, int sum_split, int sum_blocks, const E* __restrict__ dx_added, const E* __restrict__ dx_pooled,              \
        const float* __restrict__ x_coef
#define FEAR_CONV_BACKWARD_ARGS                                                                                                                      \
    x, dy, wt, dx, partial, n, cin, h, w, cout, k, stride, pad, oh, ow, ti, tr, tc, chunk, glog2, accumulate, mask, wgrad_tr, wgrad_tc, splits, relu, \
        bn_x, bn_coef, input_blocks, dy2, wt2, bn_x2, bn_coef2, split, wgrad_blocks, sum_partial, sum_dw, sum_len, sum_splits, sum_dw2, sum_split,   \
        sum_blocks, dx_added, dx_pooled, x_coef

template <typename E, int MMA>
__device__ __forceinline__ void fear_conv_backward_body(FEAR_CONV_BACKWARD_PARAMS(E)) {
    const int block = blockIdx.x;
    const FearConvSibling<E> sib{dy2, wt2, nullptr, bn_x2, bn_coef2, split};
    if (block < input_blocks)
        fear_conv_dgrad<E, MMA>(block, dy, wt, dx, n, cin, h, w, cout, k, stride, pad, oh, ow, ti, tr, tc, chunk, glog2, accumulate, mask, bn_x, bn_coef, sib,
                           FearDxTerms<E>{dx_added, dx_pooled}, x_coef);
    else if (block < input_blocks + wgrad_blocks)
        fear_conv_wgrad<E, MMA>(block - input_blocks, x, dy, partial, n, cin, h, w, cout, k, stride, pad, oh, ow, wgrad_tr, wgrad_tc, splits, relu, bn_x, bn_coef, sib, x_coef);
    else
        fear_conv_sum_partials(block - input_blocks - wgrad_blocks, sum_blocks, sum_partial, sum_dw, sum_len, sum_splits, sum_dw2, sum_split);
}

extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward(FEAR_CONV_BACKWARD_PARAMS(float)) { fear_conv_backward_body<float, FEAR_CONV_FP32>(FEAR_CONV_BACKWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_bf16(FEAR_CONV_BACKWARD_PARAMS(fear_bf16)) { fear_conv_backward_body<fear_bf16, FEAR_CONV_FP32>(FEAR_CONV_BACKWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_f16(FEAR_CONV_BACKWARD_PARAMS(fear_f16)) { fear_conv_backward_body<fear_f16, FEAR_CONV_FP32>(FEAR_CONV_BACKWARD_ARGS); }

// Both gradients with their products on tensor cores (TF32 / BF16 / FP16, as
// fear_conv_backward_input_tf32 and fear_conv_backward_weight_tf32 multiply): the same launch, with at least
// FEAR_CONV_THREADS * 32 floats of dynamic shared memory (launch.rs).
//
// One of them, fear_conv_backward_bf16mma (BF16 products on f32 tensors: the plan's `--precision
// bf16` stores the tensors as bfloat16 and takes fear_conv_backward_bf16mma_bf16), needs a few
// registers more than 128 on sm_90 and newer: its input gradient's bf16 MMA loop with dx's terms
// left 4 bytes spilled there (the epilogue reading the parked sums one at a time, and the tf32 and
// bf16-storage twins, fit). It is bounded to 3 blocks per SM there (168 registers) rather than
// spill; sm_80 holds it in 128.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define FEAR_CONV_BACKWARD_BF16MMA_F32_MIN_BLOCKS 3
#else
#define FEAR_CONV_BACKWARD_BF16MMA_F32_MIN_BLOCKS FEAR_CONV_MIN_BLOCKS
#endif
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_tf32(FEAR_CONV_BACKWARD_PARAMS(float)) { fear_conv_backward_body<float, FEAR_CONV_TF32>(FEAR_CONV_BACKWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_tf32_bf16(FEAR_CONV_BACKWARD_PARAMS(fear_bf16)) { fear_conv_backward_body<fear_bf16, FEAR_CONV_TF32>(FEAR_CONV_BACKWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_BACKWARD_BF16MMA_F32_MIN_BLOCKS) fear_conv_backward_bf16mma(FEAR_CONV_BACKWARD_PARAMS(float)) { fear_conv_backward_body<float, FEAR_CONV_BF16>(FEAR_CONV_BACKWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_bf16mma_bf16(FEAR_CONV_BACKWARD_PARAMS(fear_bf16)) { fear_conv_backward_body<fear_bf16, FEAR_CONV_BF16>(FEAR_CONV_BACKWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_f16mma(FEAR_CONV_BACKWARD_PARAMS(float)) { fear_conv_backward_body<float, FEAR_CONV_F16>(FEAR_CONV_BACKWARD_ARGS); }
extern "C" __global__ void __launch_bounds__(FEAR_CONV_THREADS, FEAR_CONV_MIN_BLOCKS) fear_conv_backward_f16mma_f16(FEAR_CONV_BACKWARD_PARAMS(fear_f16)) { fear_conv_backward_body<fear_f16, FEAR_CONV_F16>(FEAR_CONV_BACKWARD_ARGS); }

// dw += the sum of the splits' partials (fear_conv_sum_partials): a backward's own sum, or the
// last deferred one of a backward pass.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_conv_backward_weight_reduce(const float* __restrict__ partial, float* __restrict__ dw, int len, int splits,
                                                                                                       float* __restrict__ dw2, int split) {
    fear_conv_sum_partials(blockIdx.x, gridDim.x, partial, dw, len, splits, dw2, split);
}
