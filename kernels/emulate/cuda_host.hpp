// Host emulation of the CUDA built-ins the kernels in kernels/*.cu use, so the very same sources
// compile as C++ and run on the CPU in tests (no GPU, no CUDA toolkit). build.rs force-includes
// this header before every .cu file.
//
// Execution model (emulate.cpp): a launch runs its blocks on a few OS threads; inside a block
// every CUDA thread is a fiber on that OS thread (its own stack; a hand-written register switch
// on x86-64, ucontext elsewhere). __syncthreads() switches back to the
// block's scheduler, which resumes each live fiber once per round, so no thread passes barrier k
// before all have reached it. `__shared__` variables are thread_local statics: one copy per OS
// thread, which runs one block at a time, i.e. one copy per block.
//
// This proves indexing and synchronisation, not speed. Warp shuffles are emulated with two block
// barriers, so they are only valid where every thread of the block calls them together; the
// tensor-core collectives (kernels/mma.cuh) likewise, and they check it.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>

struct fear_uint3 { unsigned x, y, z; };
struct alignas(16) float4 { float x, y, z, w; };
typedef fear_uint3 uint3;
typedef fear_uint3 dim3;

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local uint3 blockDim;
extern thread_local uint3 gridDim;

namespace fear_emu {
void syncthreads();
// This OS thread's dynamic shared memory for the block it runs (sized per launch).
void* dynamic_shared();
// Exchange of one 64-bit value per thread through the block (two barriers).
unsigned long long exchange(unsigned long long mine, unsigned source_lane_in_block);
// A warp collective (mma.sync, ldmatrix.sync; kernels/mma.cuh): every lane deposits `bytes` of
// its operands, a barrier, then each lane gets all 32 deposits of its warp in lane order in
// `all`, and a second barrier. Run as a block barrier, so every thread of the block must reach
// the same collective together: a lane that exited or is elsewhere is an error of the launch.
void warp_gather(const char* what, const void* mine, unsigned bytes, void* all);
// cp.async: the copy is queued for this thread and lands only at a cp_async_wait that covers its
// committed group, so a missing wait reads stale shared memory.
void cp_async(void* shared, const void* global, unsigned bytes);
void cp_async_commit();
void cp_async_wait(int pending);
// Records an error of the running launch (fear_emu_launch returns it); the kernel runs on.
void fail(const char* format, ...);
}

// The architecture the emulation claims: every wrapper of kernels/mma.cuh is available.
#define FEAR_EMULATED_SM 80

#define __global__
#define __device__ static
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static thread_local
#define __syncthreads() ::fear_emu::syncthreads()
// A block barrier: like the shuffles, valid where every thread of the block calls it together.
#define __syncwarp(...) ::fear_emu::syncthreads()
#define __CUDACC_EMULATED__ 1
// `extern __shared__ T name[]` on a GPU (see FEAR_DYNAMIC_SHARED in artifacts::combined_source).
#define FEAR_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::fear_emu::dynamic_shared())

using std::max;
using std::min;
using std::sqrt;
using std::log;
using std::exp;

static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
static inline int __float_as_int(float f) { int v; std::memcpy(&v, &f, 4); return v; }
template <typename T> static inline T __ldg(const T* p) { return *p; }

static inline float atomicAdd(float* address, float v) {
    uint32_t* bits = reinterpret_cast<uint32_t*>(address);
    uint32_t old = __atomic_load_n(bits, __ATOMIC_RELAXED);
    for (;;) {
        float current = __int_as_float((int)old), next = current + v;
        if (__atomic_compare_exchange_n(bits, &old, (uint32_t)__float_as_int(next), false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return current;
    }
}
static inline unsigned atomicAdd(unsigned* address, unsigned v) { return __atomic_fetch_add(address, v, __ATOMIC_RELAXED); }
static inline int atomicAdd(int* address, int v) { return __atomic_fetch_add(address, v, __ATOMIC_RELAXED); }

template <typename T> static inline T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
    unsigned lane = threadIdx.x % width, base = threadIdx.x - lane;
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = ::fear_emu::exchange(bits, base + (lane ^ (unsigned)lane_mask));
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}
template <typename T> static inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    unsigned lane = threadIdx.x % width, base = threadIdx.x - lane;
    unsigned src = lane + delta < (unsigned)width ? base + lane + delta : threadIdx.x;
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = ::fear_emu::exchange(bits, src);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}
