// What a tensor is stored as: f32, or bfloat16 in a step planned with `--precision bf16` (its
// activations and activation gradients in the Half space, src/engine/kernel.rs). Kernels that
// read or write such tensors are templates over the storage type S (float or fear_bf16) and go
// through fear_load / fear_store, which widen to f32 and round back to nearest even: all
// arithmetic is f32, only the stored values are 16 bits. Each such kernel is instantiated twice,
// `fear_x` (float) and `fear_x_bf16`; the launch code picks by where its tensors lie.
//
// The rounding is the integer code of src/engine/precision.rs (f32_to_bf16), line for line, so a
// kernel's stores and the CPU reference's (CpuMemory rounds every output written to Half) give
// the same bits for the same f32 value.

// The bfloat16 nearest to x (ties to even); NaN stays a quiet NaN, overflow gives infinity.
__device__ __forceinline__ unsigned fear_f32_to_bf16(float x) {
    unsigned u = (unsigned)__float_as_int(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x0040u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

__device__ __forceinline__ float fear_bf16_to_f32(unsigned h) { return __int_as_float((int)((h & 0xffffu) << 16)); }

// A stored bfloat16 (a struct, not a bare integer, so a bfloat16 tensor can never be passed
// where an f32 one is expected, nor indexed as a number).
struct fear_bf16 {
    unsigned short bits;
};

__device__ __forceinline__ float fear_load(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float fear_load(const fear_bf16* p, long long i) { return fear_bf16_to_f32(p[i].bits); }
__device__ __forceinline__ void fear_store(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void fear_store(fear_bf16* p, long long i, float v) { p[i].bits = (unsigned short)fear_f32_to_bf16(v); }

// v as a tensor of p's storage type would hold it (p only picks the type): what a fused kernel
// uses for a value the unfused plan would have stored and read back (a batch norm's output it
// normalises as it reads, say), so both plans round at the same points.
__device__ __forceinline__ float fear_stored(const float*, float v) { return v; }
__device__ __forceinline__ float fear_stored(const fear_bf16*, float v) { return fear_bf16_to_f32(fear_f32_to_bf16(v)); }
