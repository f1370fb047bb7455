// Bare tensor-core tiles: one warp computes D = A B + C through one kind of mma.sync (the
// wrappers and lane maps of kernels/mma.cuh), reading row-major f32 operands from global memory
// and rounding A and B to the kind's precision on the way; mirror cpu.rs (mma_tile). They are
// what `fear doctor` checks first on a GPU: a lane map wrong the same way in a kernel and in the
// emulation shows only there.

// Where element i of a lane's C (or D) fragment sits in a row-major [16][8] tile.
__device__ __forceinline__ int fear_tile_c_at(int lane, int i) { return fear_m16n8k8_c_row(lane, i) * 8 + fear_m16n8k8_c_col(lane, i); }

// A [16][8], B [8][8] (k x n), C and D [16][8]; A and B rounded to bf16 (sm_80+).
extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_mma_bf16_tile(const float* __restrict__ a, const float* __restrict__ b,
                                                                                const float* __restrict__ c, float* __restrict__ d) {
    int lane = threadIdx.x;
    unsigned fa[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float lo = a[fear_m16n8k8_a16_row(lane, 2 * r) * 8 + fear_m16n8k8_a16_col(lane, 2 * r)];
        float hi = a[fear_m16n8k8_a16_row(lane, 2 * r + 1) * 8 + fear_m16n8k8_a16_col(lane, 2 * r + 1)];
        fa[r] = fear_pack_bf16(lo, hi);
    }
    unsigned fb = fear_pack_bf16(b[fear_m16n8k8_b16_row(lane, 0) * 8 + fear_m16n8k8_b16_col(lane, 0)],
                                 b[fear_m16n8k8_b16_row(lane, 1) * 8 + fear_m16n8k8_b16_col(lane, 1)]);
    float fc[4], fd[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) fc[i] = c[fear_tile_c_at(lane, i)];
    fear_mma_bf16_m16n8k8(fd, fa, fb, fc);
#pragma unroll
    for (int i = 0; i < 4; ++i) d[fear_tile_c_at(lane, i)] = fd[i];
}

// The same shapes, A and B rounded to tf32 (sm_80+).
extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_mma_tf32_tile(const float* __restrict__ a, const float* __restrict__ b,
                                                                                const float* __restrict__ c, float* __restrict__ d) {
    int lane = threadIdx.x;
    unsigned fa[4], fb[2];
#pragma unroll
    for (int i = 0; i < 4; ++i) fa[i] = (unsigned)__float_as_int(fear_round_tf32(a[fear_m16n8k8_a32_row(lane, i) * 8 + fear_m16n8k8_a32_col(lane, i)]));
#pragma unroll
    for (int i = 0; i < 2; ++i) fb[i] = (unsigned)__float_as_int(fear_round_tf32(b[fear_m16n8k8_b32_row(lane, i) * 8 + fear_m16n8k8_b32_col(lane, i)]));
    float fc[4], fd[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) fc[i] = c[fear_tile_c_at(lane, i)];
    fear_mma_tf32_m16n8k8(fd, fa, fb, fc);
#pragma unroll
    for (int i = 0; i < 4; ++i) d[fear_tile_c_at(lane, i)] = fd[i];
}

// Four m8n8k4 tiles, one per quadpair q: A [4][8][4], B [4][4][8] (k x n), C and D [4][8][8];
// A and B rounded to f16 (sm_70+).
extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_mma_f16_tile(const float* __restrict__ a, const float* __restrict__ b,
                                                                               const float* __restrict__ c, float* __restrict__ d) {
    int lane = threadIdx.x, q = fear_m8n8k4_quadpair(lane), t = fear_m8n8k4_thread(lane);
    const float* ra = a + (q * 8 + t) * 4;  // row t of quadpair q's A
    const float* cb = b + q * 32 + t;       // column t of its B (stride 8)
    unsigned fa[2] = {fear_pack_f16(ra[0], ra[1]), fear_pack_f16(ra[2], ra[3])};
    unsigned fb[2] = {fear_pack_f16(cb[0], cb[8]), fear_pack_f16(cb[16], cb[24])};
    float fc[8], fd[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) fc[i] = c[q * 64 + fear_m8n8k4_c_row(lane, i) * 8 + fear_m8n8k4_c_col(lane, i)];
    fear_mma_f16_m8n8k4(fd, fa, fb, fc);
#pragma unroll
    for (int i = 0; i < 8; ++i) d[q * 64 + fear_m8n8k4_c_row(lane, i) * 8 + fear_m8n8k4_c_col(lane, i)] = fd[i];
}

// A [16][16], B [16][8] (k x n), C and D [16][8], through shared memory as the convolutions
// will stage their operands: cp.async copies A (16-byte pieces) as one group, B (8-byte) and C
// (4-byte) as a second; A is converted to bf16 once its group has landed (wait_group 1), B
// (transposed) once all have; ldmatrix then reads both as the fragments of two m16n8k8 products
// (k 0-7, then 8-15). Needs a, b and c aligned to 16, 8 and 4 bytes, and
// 2816 bytes of dynamic shared memory (launch.rs). `wait` 0 skips the waits: the test
// that a missing wait gives a wrong result in the emulation (sm_80+).
extern "C" __global__ void __launch_bounds__(FEAR_MMA_THREADS) fear_mma_bf16_staged_tile(const float* __restrict__ a, const float* __restrict__ b,
                                                                                       const float* __restrict__ c, float* __restrict__ d,
                                                                                       int wait) {
    FEAR_DYNAMIC_SHARED(float, smem);
    float* sa = smem;      // [16][16]
    float* sb = sa + 256;  // [16][8]
    float* sc = sb + 128;  // [16][8]
    unsigned short* ha = (unsigned short*)(sc + 128);  // A as bf16, [16][16]
    unsigned short* hbt = ha + 256;                    // B transposed as bf16, [8][16]
    int lane = threadIdx.x;
    for (int i = lane; i < 64; i += 32) fear_cp_async_16(sa + 4 * i, a + 4 * i);
    fear_cp_async_commit();
    for (int i = lane; i < 64; i += 32) fear_cp_async_8(sb + 2 * i, b + 2 * i);
    for (int i = lane; i < 128; i += 32) fear_cp_async_4(sc + i, c + i);
    fear_cp_async_commit();
    if (wait) fear_cp_async_wait<1>();
    __syncthreads();
    for (int i = lane; i < 256; i += 32) ha[i] = (unsigned short)fear_f32_to_bf16(sa[i]);
    if (wait) fear_cp_async_wait<0>();
    __syncthreads();
    for (int i = lane; i < 128; i += 32) hbt[(i % 8) * 16 + i / 8] = (unsigned short)fear_f32_to_bf16(sb[i]);
    __syncthreads();
    // Lane 8j + r points at row r of matrix j: A's quarters (rows 0-7 / 8-15, columns 0-7, then
    // 8-15), and B's two k-halves (twice).
    int j = lane >> 3, r = lane & 7;
    unsigned fa[4], fb[4];
    fear_ldmatrix_x4(fa, ha + (r + 8 * (j & 1)) * 16 + 8 * (j >> 1));
    fear_ldmatrix_x4(fb, hbt + r * 16 + 8 * (j & 1));
    float acc[4], mid[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[i] = sc[fear_tile_c_at(lane, i)];
    unsigned k_low[2] = {fa[0], fa[1]}, k_high[2] = {fa[2], fa[3]};
    fear_mma_bf16_m16n8k8(mid, k_low, fb[0], acc);
    fear_mma_bf16_m16n8k8(acc, k_high, fb[1], mid);
#pragma unroll
    for (int i = 0; i < 4; ++i) d[fear_tile_c_at(lane, i)] = acc[i];
}
