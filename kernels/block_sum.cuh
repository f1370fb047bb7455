// Block-wide sum of one double per thread, in a fixed tree (so every run gives the same bits);
// every thread gets the total. THREADS is the block size the kernel is launched with (a power
// of two, from launch_bounds.cuh); scratch holds THREADS doubles of shared memory.
template <int THREADS>
__device__ double fear_block_sum(double v, double* scratch) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) scratch[threadIdx.x] += scratch[threadIdx.x + half];
        __syncthreads();
    }
    double total = scratch[0];
    __syncthreads();
    return total;
}
