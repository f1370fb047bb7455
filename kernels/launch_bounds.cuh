// Threads per block of every kernel: the one place they are written. build.rs puts this file
// before the kernel sources (NVRTC at build time, run-time NVRTC and the host emulation alike)
// and generates a Rust constant from each `#define FEAR_*_THREADS N` line (OUT_DIR/kernel_threads.rs,
// included by src/engine/cuda/launch.rs), so a kernel's __launch_bounds__ and the block size Rust
// launches it with cannot drift apart. The direction .cu -> .rs (not the reverse) keeps each
// kernel readable on its own: its bound is a name found here, not a value pasted in by a script.
// Reductions assume exactly this many threads; __launch_bounds__ tells ptxas the most a launch
// uses, so it never picks more registers than a full block can have.

#ifdef __CUDACC_EMULATED__
#define __launch_bounds__(...)
#endif

#define FEAR_ELEMENTWISE_THREADS 256
#define FEAR_AUGMENT_THREADS 256
#define FEAR_CONV_THREADS 128
#define FEAR_WGRAD_THREADS 128
// Blocks per SM the register-blocked convolutions are compiled for (the second argument of their
// __launch_bounds__): without it ptxas on sm_90 caps them at 72-80 registers and spills the
// accumulators; with it, the cap is 65536 / (threads * blocks) registers (the convolutions use
// 100-128: four blocks of 128 threads per SM; see the ptxas reports). sm_70 gets three: its
// 96 KB of shared memory per SM holds only three of the tiles (launch.rs sizes them near its
// 32 KB budget), so a fourth block's share of registers would buy nothing there, and the
// sibling pairs' pointer selects (issue 13 item 4) spill at 128 registers on sm_70.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define FEAR_CONV_MIN_BLOCKS 3
#else
#define FEAR_CONV_MIN_BLOCKS 4
#endif
#define FEAR_WGRAD_MIN_BLOCKS 4
#define FEAR_BN_THREADS 256
#define FEAR_LOSS_THREADS 256
#define FEAR_SUMSQ_THREADS 1024
#define FEAR_PROBE_THREADS 256
// One warp: the bare tensor-core tiles of src/engine/ops/mma/.
#define FEAR_MMA_THREADS 32
