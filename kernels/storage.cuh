// What a tensor is stored as: f32, bfloat16 in a step planned with `--precision bf16` (its
// activations and activation gradients in the Half space, src/engine/kernel.rs), or IEEE half
// with `--precision fp16` (the HalfF16 space). Kernels that read or write such tensors are
// templates over the storage type S (float, fear_bf16 or fear_f16) and go through fear_load /
// fear_store, which widen to f32 and round back to nearest even: all arithmetic is f32, only the
// stored values are 16 bits. Each such kernel is instantiated three times, `fear_x` (float),
// `fear_x_bf16` and `fear_x_f16`; the launch code picks by where its tensors lie.
//
// The rounding is the integer code of src/engine/precision.rs (f32_to_bf16, f32_to_f16), line for
// line, so a kernel's stores and the CPU reference's (CpuMemory rounds every output written to a
// 16-bit space) give the same bits for the same f32 value.

// The bfloat16 nearest to x (ties to even); NaN stays a quiet NaN, overflow gives infinity.
__device__ __forceinline__ unsigned fear_f32_to_bf16(float x) {
    unsigned u = (unsigned)__float_as_int(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x0040u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

__device__ __forceinline__ float fear_bf16_to_f32(unsigned h) { return __int_as_float((int)((h & 0xffffu) << 16)); }

// The IEEE half nearest to x (ties to even, subnormals included); NaN stays a quiet NaN,
// |x| >= 65520 gives infinity.
__device__ __forceinline__ unsigned fear_f32_to_f16(float x) {
    unsigned u = (unsigned)__float_as_int(x);
    unsigned sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return sign | 0x7c00u | (a > 0x7f800000u ? 0x0200u | ((a >> 13) & 0x03ffu) : 0u);
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x33000000u) return sign;
    unsigned kept, dropped, half;
    if (a >= 0x38800000u) {
        kept = (a - 0x38000000u) >> 13;
        dropped = a & 0x1fffu;
        half = 0x1000u;
    } else {
        unsigned mantissa = (a & 0x007fffffu) | 0x00800000u, shift = 126u - (a >> 23);
        kept = mantissa >> shift;
        dropped = mantissa & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
    }
    return sign | (kept + (dropped > half || (dropped == half && (kept & 1u))));
}

// The f32 an IEEE half stands for (exact, subnormals included). On a GPU the conversion
// instruction (exact, so no rounding point: one instruction, as cheap as a bfloat16's shift, which
// the register-capped batch-norm statistics need: the integer code spilled there); under the host
// emulation the integer code, the twin of precision.rs's f16_to_f32 (fear_emu_round holds the two
// to the same bits).
__device__ __forceinline__ float fear_f16_to_f32(unsigned h) {
#ifndef __CUDACC_EMULATED__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"((unsigned short)h));
    return f;
#else
    unsigned sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x03ffu, bits;
    if (exponent == 0 && mantissa == 0) {
        bits = sign;
    } else if (exponent == 0) {
        unsigned e = 113u;
        while (!(mantissa & 0x0400u)) {
            mantissa <<= 1;
            e -= 1;
        }
        bits = sign | (e << 23) | ((mantissa & 0x03ffu) << 13);
    } else if (exponent == 0x1fu) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    }
    return __int_as_float((int)bits);
#endif
}

// A stored bfloat16 (a struct, not a bare integer, so a bfloat16 tensor can never be passed
// where an f32 one is expected, nor indexed as a number).
struct fear_bf16 {
    unsigned short bits;
};
// A stored IEEE half (binary16), likewise.
struct fear_f16 {
    unsigned short bits;
};

__device__ __forceinline__ float fear_load(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float fear_load(const fear_bf16* p, long long i) { return fear_bf16_to_f32(p[i].bits); }
__device__ __forceinline__ float fear_load(const fear_f16* p, long long i) { return fear_f16_to_f32(p[i].bits); }
__device__ __forceinline__ void fear_store(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void fear_store(fear_bf16* p, long long i, float v) { p[i].bits = (unsigned short)fear_f32_to_bf16(v); }
__device__ __forceinline__ void fear_store(fear_f16* p, long long i, float v) { p[i].bits = (unsigned short)fear_f32_to_f16(v); }

// v as a tensor of p's storage type would hold it (p only picks the type): what a fused kernel
// uses for a value the unfused plan would have stored and read back (a batch norm's output it
// normalises as it reads, say), so both plans round at the same points.
__device__ __forceinline__ float fear_stored(const float*, float v) { return v; }
__device__ __forceinline__ float fear_stored(const fear_bf16*, float v) { return fear_bf16_to_f32(fear_f32_to_bf16(v)); }
__device__ __forceinline__ float fear_stored(const fear_f16*, float v) { return fear_f16_to_f32(fear_f32_to_f16(v)); }
