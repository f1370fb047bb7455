// Tensor-core primitives: small wrappers around the inline PTX of mma.sync, ldmatrix and
// cp.async, the one place that says which lane holds which element of each fragment (from the
// PTX ISA's tables "Matrix Fragments for mma.m16n8k8" and "for mma.m8n8k4", and ldmatrix's),
// and the round-to-nearest-even conversions to bf16, tf32 and f16 as plain integer code (the
// same algorithm as src/engine/precision.rs, which the CPU reference rounds with).
//
// Each wrapper has three bodies: the host emulation's (under __CUDACC_EMULATED__, built on the
// warp collective and the delayed copies of kernels/emulate/, reading the fragments through the
// lane maps below), the PTX for the architectures that have the instruction, and for older ones
// a stand-in that keeps every target compiling: NaN results for mma and ldmatrix (the host never
// launches such a kernel there: see MmaKind::min_sm), a plain copy for cp.async. The emulation
// claims sm_80 (fear_emu_sm). Wrappers assume one-dimensional blocks of whole warps, and every
// lane of the warp must call a collective (mma, ldmatrix) together.
//
// A lane map that is wrong the same way in a kernel and here passes the emulation: only a GPU
// shows it, which is why `fear doctor` first runs one bare tile of each kind.

// ---- rounding (integer code; identical in src/engine/precision.rs) ------------------------

// fear_f32_to_bf16, fear_bf16_to_f32, fear_f32_to_f16 and fear_f16_to_f32 are in storage.cuh (tensors
// stored as bfloat16 or IEEE half use them too).

// x rounded to TF32 (ties to even): the low 13 mantissa bits cleared.
__device__ __forceinline__ float fear_round_tf32(float x) {
    unsigned u = (unsigned)__float_as_int(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return __int_as_float((int)((u & 0x007fffffu) ? ((u | 0x00400000u) & 0xffffe000u) : u));
    return __int_as_float((int)((u + 0xfffu + ((u >> 13) & 1u)) & 0xffffe000u));
}

// Two 16-bit values in one register: `lo` (the lower-indexed element) in the low half.
__device__ __forceinline__ unsigned fear_pack_bf16(float lo, float hi) { return fear_f32_to_bf16(lo) | (fear_f32_to_bf16(hi) << 16); }
// fear_pack_bf16 of two floats that are bfloat16 values already (rounded where they were staged):
// their high halves as they are, without the rounding's arithmetic.
__device__ __forceinline__ unsigned fear_pack_bf16_exact(float lo, float hi) {
    return ((unsigned)__float_as_int(lo) >> 16) | ((unsigned)__float_as_int(hi) & 0xffff0000u);
}
__device__ __forceinline__ unsigned fear_pack_f16(float lo, float hi) { return fear_f32_to_f16(lo) | (fear_f32_to_f16(hi) << 16); }
// fear_pack_f16 of two floats that are halves' values already (rounded where they were staged):
// on a GPU two conversions that are exact whatever their rounding mode, without the integer
// code's branches; elsewhere (the emulation, whose bits must be the CPU's) that code.
__device__ __forceinline__ unsigned fear_pack_f16_exact(float lo, float hi) {
#if !defined(__CUDACC_EMULATED__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
    unsigned r;
    asm("{ .reg .f16 l, h; cvt.rn.f16.f32 l, %1; cvt.rn.f16.f32 h, %2; mov.b32 %0, {l, h}; }\n" : "=r"(r) : "f"(lo), "f"(hi));
    return r;
#else
    return fear_pack_f16(lo, hi);
#endif
}

// ---- fragment layouts: (row, column) of element i of `lane`'s fragment --------------------
// groupID = lane / 4, threadID_in_group = lane % 4 in the PTX ISA's words.

// m16n8k8 with 16-bit A and B (bf16): A 16x8, 4 elements in 2 registers (element i in register
// i / 2, half i % 2); B 8x8 (k x n), 2 elements in 1 register.
__device__ __forceinline__ int fear_m16n8k8_a16_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
__device__ __forceinline__ int fear_m16n8k8_a16_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }
__device__ __forceinline__ int fear_m16n8k8_b16_row(int lane, int i) { return 2 * (lane & 3) + i; }
__device__ __forceinline__ int fear_m16n8k8_b16_col(int lane, int i) { return lane >> 2; }
// m16n8k8 with tf32 A and B: A 16x8, 4 elements, one per register; B 8x8, 2 elements.
__device__ __forceinline__ int fear_m16n8k8_a32_row(int lane, int i) { return (lane >> 2) + 8 * (i & 1); }
__device__ __forceinline__ int fear_m16n8k8_a32_col(int lane, int i) { return (lane & 3) + 4 * (i >> 1); }
__device__ __forceinline__ int fear_m16n8k8_b32_row(int lane, int i) { return (lane & 3) + 4 * i; }
__device__ __forceinline__ int fear_m16n8k8_b32_col(int lane, int i) { return lane >> 2; }
// m16n8k8 f32 C and D: 16x8, 4 elements.
__device__ __forceinline__ int fear_m16n8k8_c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
__device__ __forceinline__ int fear_m16n8k8_c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

// m8n8k4 (f16 A and B, f32 C and D): the warp computes four independent products, one per
// quadpair q = (lane / 4) % 4 (lanes 4q..4q+3 and 4q+16..4q+19), whose thread t (0..7) is
// lane % 4 + 4 (lane / 16). A 8x4 row-major: thread t holds row t (element i: column i, 4 in 2
// registers); B 4x8 column-major: thread t holds column t (element i: row i); C and D 8x8: 8
// elements.
__device__ __forceinline__ int fear_m8n8k4_quadpair(int lane) { return (lane >> 2) & 3; }
__device__ __forceinline__ int fear_m8n8k4_thread(int lane) { return (lane & 3) + 4 * (lane >> 4); }
__device__ __forceinline__ int fear_m8n8k4_c_row(int lane, int i) { return (lane & 1) + (i & 2) + 4 * (lane >> 4); }
__device__ __forceinline__ int fear_m8n8k4_c_col(int lane, int i) { return (lane & 2) + (i & 1) + (i & 4); }

// ---- the host emulation of the collectives ------------------------------------------------
#ifdef __CUDACC_EMULATED__
// One lane's operands of an mma, as deposited for the warp.
struct FearMmaLane {
    unsigned a[4];
    unsigned b[2];
    float c[8];
};

// Rebuilds a warp-wide operand from every lane's fragment: element i of lane l is value(l, i)
// at (row(l, i), col(l, i)). A lane map that misses or repeats an element is an error.
template <int R, int C, typename Value, typename Row, typename Col>
static void fear_emu_assemble(const char* what, float (&m)[R][C], int per_lane, Value value, Row row, Col col) {
    int seen[R][C] = {};
    for (int l = 0; l < 32; ++l)
        for (int i = 0; i < per_lane; ++i) {
            int r = row(l, i), c = col(l, i);
            m[r][c] = value(l, i);
            seen[r][c] += 1;
        }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c)
            if (seen[r][c] != 1) ::fear_emu::fail("%s: the lane map covers element (%d, %d) %d times", what, r, c, seen[r][c]);
}

// Element (r, c) of D = A B + C with K terms, summed in double and rounded once to float.
template <int M, int K, int N>
static float fear_emu_dot(const float (&a)[M][K], const float (&b)[K][N], const float (&c)[M][N], int r, int col) {
    double s = c[r][col];
    for (int k = 0; k < K; ++k) s += (double)a[r][k] * (double)b[k][col];
    return (float)s;
}

static inline unsigned fear_emu_half(unsigned reg, int i) { return (reg >> (16 * (i & 1))) & 0xffffu; }
#endif

__device__ __forceinline__ float fear_nan() { return __int_as_float(0x7fc00000); }

// Whether this build has the instructions (the host emulation, claiming sm_80, has both):
// mma.sync.m8n8k4.f16 (sm_70+), and m16n8k8 tf32 and bf16, ldmatrix and cp.async (sm_80+).
#if defined(__CUDACC_EMULATED__) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700)
#define FEAR_HAS_MMA_M8N8K4 1
#else
#define FEAR_HAS_MMA_M8N8K4 0
#endif
#if defined(__CUDACC_EMULATED__) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
#define FEAR_HAS_MMA_M16N8K8 1
#else
#define FEAR_HAS_MMA_M16N8K8 0
#endif

// ---- mma ----------------------------------------------------------------------------------

// d = a b + c on one m16n8k8 tile, bf16 inputs (packed by fear_pack_bf16), f32 accumulate (sm_80+).
__device__ __forceinline__ void fear_mma_bf16_m16n8k8(float d[4], const unsigned a[2], unsigned b, const float c[4]) {
#if defined(__CUDACC_EMULATED__)
    FearMmaLane mine = {{a[0], a[1], 0, 0}, {b, 0}, {c[0], c[1], c[2], c[3]}};
    FearMmaLane all[32];
    ::fear_emu::warp_gather("mma.sync.m16n8k8.bf16", &mine, sizeof mine, all);
    float A[16][8], B[8][8], C[16][8];
    const char* what = "mma.sync.m16n8k8.bf16";
    fear_emu_assemble(what, A, 4, [&](int l, int i) { return fear_bf16_to_f32(fear_emu_half(all[l].a[i >> 1], i)); }, fear_m16n8k8_a16_row, fear_m16n8k8_a16_col);
    fear_emu_assemble(what, B, 2, [&](int l, int i) { return fear_bf16_to_f32(fear_emu_half(all[l].b[0], i)); }, fear_m16n8k8_b16_row, fear_m16n8k8_b16_col);
    fear_emu_assemble(what, C, 4, [&](int l, int i) { return all[l].c[i]; }, fear_m16n8k8_c_row, fear_m16n8k8_c_col);
    int lane = threadIdx.x & 31;
    for (int i = 0; i < 4; ++i) d[i] = fear_emu_dot(A, B, C, fear_m16n8k8_c_row(lane, i), fear_m16n8k8_c_col(lane, i));
#elif __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    for (int i = 0; i < 4; ++i) d[i] = fear_nan();
#endif
}

// d = a b + c on one m16n8k8 tile, tf32 inputs (f32 bits rounded by fear_round_tf32; the
// tensor core ignores the low 13 bits, and so does the emulation), f32 accumulate (sm_80+).
__device__ __forceinline__ void fear_mma_tf32_m16n8k8(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
#if defined(__CUDACC_EMULATED__)
    FearMmaLane mine = {{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}};
    FearMmaLane all[32];
    ::fear_emu::warp_gather("mma.sync.m16n8k8.tf32", &mine, sizeof mine, all);
    float A[16][8], B[8][8], C[16][8];
    const char* what = "mma.sync.m16n8k8.tf32";
    fear_emu_assemble(what, A, 4, [&](int l, int i) { return __int_as_float((int)(all[l].a[i] & 0xffffe000u)); }, fear_m16n8k8_a32_row, fear_m16n8k8_a32_col);
    fear_emu_assemble(what, B, 2, [&](int l, int i) { return __int_as_float((int)(all[l].b[i] & 0xffffe000u)); }, fear_m16n8k8_b32_row, fear_m16n8k8_b32_col);
    fear_emu_assemble(what, C, 4, [&](int l, int i) { return all[l].c[i]; }, fear_m16n8k8_c_row, fear_m16n8k8_c_col);
    int lane = threadIdx.x & 31;
    for (int i = 0; i < 4; ++i) d[i] = fear_emu_dot(A, B, C, fear_m16n8k8_c_row(lane, i), fear_m16n8k8_c_col(lane, i));
#elif __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    for (int i = 0; i < 4; ++i) d[i] = fear_nan();
#endif
}

// d = a b + c on the four m8n8k4 tiles of a warp's quadpairs, f16 inputs (packed by
// fear_pack_f16), f32 accumulate (sm_70+).
__device__ __forceinline__ void fear_mma_f16_m8n8k4(float d[8], const unsigned a[2], const unsigned b[2], const float c[8]) {
#if defined(__CUDACC_EMULATED__)
    FearMmaLane mine = {{a[0], a[1], 0, 0}, {b[0], b[1]}, {c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]}};
    FearMmaLane all[32];
    ::fear_emu::warp_gather("mma.sync.m8n8k4.f16", &mine, sizeof mine, all);
    // The four products side by side: quadpair q's rows (of A, C) and columns (of B, C) at 8q.
    float A[32][4], B[4][32], C[32][8];
    const char* what = "mma.sync.m8n8k4.f16";
    auto qp = [](int l) { return 8 * fear_m8n8k4_quadpair(l); };
    fear_emu_assemble(what, A, 4, [&](int l, int i) { return fear_f16_to_f32(fear_emu_half(all[l].a[i >> 1], i)); },
                      [&](int l, int i) { return qp(l) + fear_m8n8k4_thread(l); }, [](int l, int i) { return i; });
    fear_emu_assemble(what, B, 4, [&](int l, int i) { return fear_f16_to_f32(fear_emu_half(all[l].b[i >> 1], i)); },
                      [](int l, int i) { return i; }, [&](int l, int i) { return qp(l) + fear_m8n8k4_thread(l); });
    fear_emu_assemble(what, C, 8, [&](int l, int i) { return all[l].c[i]; }, [&](int l, int i) { return qp(l) + fear_m8n8k4_c_row(l, i); }, fear_m8n8k4_c_col);
    int lane = threadIdx.x & 31, q = qp(lane);
    for (int i = 0; i < 8; ++i) {
        int r = q + fear_m8n8k4_c_row(lane, i), col = fear_m8n8k4_c_col(lane, i);
        double s = C[r][col];
        for (int k = 0; k < 4; ++k) s += (double)A[r][k] * (double)B[k][q + col];
        d[i] = (float)s;
    }
#elif __CUDA_ARCH__ >= 700
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f32.f16.f16.f32 {%0,%1,%2,%3,%4,%5,%6,%7}, {%8,%9}, {%10,%11}, "
                 "{%12,%13,%14,%15,%16,%17,%18,%19};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7])
                 : "r"(a[0]), "r"(a[1]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]), "f"(c[4]), "f"(c[5]), "f"(c[6]),
                   "f"(c[7]));
#else
    for (int i = 0; i < 8; ++i) d[i] = fear_nan();
#endif
}

// ---- shared-memory loads and copies -------------------------------------------------------

#ifndef __CUDACC_EMULATED__
// The shared-memory address (what ldmatrix and cp.async take) of a generic pointer into it.
__device__ __forceinline__ unsigned fear_shared_address(const void* p) {
    unsigned s;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }\n" : "=r"(s) : "l"(p));
    return s;
}
#endif

// Loads four 8x8 matrices of 16-bit elements from shared memory (sm_75+). Lane 8j + r gives the
// address of row r of matrix j (16 contiguous bytes, 16-byte aligned); r[j] of every lane
// receives row lane / 4, columns 2 (lane % 4) and 2 (lane % 4) + 1 of matrix j, the lower
// column in the low half: an A or B fragment of fear_mma_bf16_m16n8k8 as laid out above.
__device__ __forceinline__ void fear_ldmatrix_x4(unsigned r[4], const void* row) {
#if defined(__CUDACC_EMULATED__)
    if ((uintptr_t)row % 16) ::fear_emu::fail("ldmatrix: row address %p is not 16-byte aligned", row);
    const void* all[32];
    ::fear_emu::warp_gather("ldmatrix.sync.x4", &row, sizeof row, all);
    int lane = threadIdx.x & 31;
    for (int j = 0; j < 4; ++j) std::memcpy(&r[j], (const char*)all[8 * j + lane / 4] + 4 * (lane % 4), 4);
#elif __CUDA_ARCH__ >= 750
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fear_shared_address(row))
                 : "memory");
#else
    for (int j = 0; j < 4; ++j) r[j] = 0x7fc07fc0u;  // bf16 NaNs
#endif
}

// Copies of 4, 8 or 16 bytes from global to shared memory that complete asynchronously (sm_80+;
// both addresses aligned to the size): they are certain to have landed only after a
// fear_cp_async_wait that covers their group (and, for other threads to read them, a
// __syncthreads after it). Before sm_80 a plain copy, complete at once.
__device__ __forceinline__ void fear_cp_async_4(void* shared, const void* global) {
#if defined(__CUDACC_EMULATED__)
    ::fear_emu::cp_async(shared, global, 4);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(fear_shared_address(shared)), "l"(global) : "memory");
#else
    *(unsigned*)shared = *(const unsigned*)global;
#endif
}

__device__ __forceinline__ void fear_cp_async_8(void* shared, const void* global) {
#if defined(__CUDACC_EMULATED__)
    ::fear_emu::cp_async(shared, global, 8);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(fear_shared_address(shared)), "l"(global) : "memory");
#else
    *(uint2*)shared = *(const uint2*)global;
#endif
}

__device__ __forceinline__ void fear_cp_async_16(void* shared, const void* global) {
#if defined(__CUDACC_EMULATED__)
    ::fear_emu::cp_async(shared, global, 16);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16;\n" ::"r"(fear_shared_address(shared)), "l"(global) : "memory");
#else
    *(uint4*)shared = *(const uint4*)global;
#endif
}

// Closes this thread's group of copies issued since the last commit.
__device__ __forceinline__ void fear_cp_async_commit() {
#if defined(__CUDACC_EMULATED__)
    ::fear_emu::cp_async_commit();
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most PENDING of this thread's most recently committed groups are still in
// flight (0: all have landed).
template <int PENDING>
__device__ __forceinline__ void fear_cp_async_wait() {
#if defined(__CUDACC_EMULATED__)
    ::fear_emu::cp_async_wait(PENDING);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
#endif
}
