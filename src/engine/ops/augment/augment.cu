// The data kernel: uint8 images resident on the device -> a normalised, randomly cropped and
// flipped (optionally Cutout) batch, f32 or (a step storing its tensors so) bfloat16 or IEEE half. Mirrors src/data/augment.rs bit for bit: the random
// choices of the image at position `p` of epoch `e` come from a counter-based generator keyed by
// (seed, e, p), so a captured step can be replayed with only the counters changed.

#define FEAR_AUG_TAG 0x41554731ULL  // "AUG1"

__device__ __forceinline__ unsigned long long fear_splitmix64(unsigned long long z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Draw `k` of one image: a well-mixed 64-bit value.
__device__ __forceinline__ unsigned long long fear_aug_draw(unsigned long long seed, unsigned long long epoch,
                                                            unsigned long long position, unsigned long long k) {
    return fear_splitmix64(fear_splitmix64(fear_splitmix64(fear_splitmix64(seed) ^ epoch) ^ position) ^ (FEAR_AUG_TAG + k));
}

// Uniform in [0, n) from the top 32 bits (multiply-shift).
__device__ __forceinline__ int fear_aug_uniform(unsigned long long draw, unsigned n) {
    return (int)(((draw >> 32) * (unsigned long long)n) >> 32);
}

// One block per image of the batch. images: [*, 3, size, size] bytes; indices: which image each
// batch row takes; lut: [3][256] normalised value of each byte per channel; out: [batch, 3, size, size],
// f32, or (out_storage 1) bfloat16 or (2) IEEE half, rounded to nearest even as the host's upload
// of a batch rounds: one flag rather than three instantiations, the kernel being one pass of a few
// stores per thread.
// Where a training step is fed from the device alone (no upload, so it can follow a replayed step
// without waiting), also label_out[r] = labels[indices[r]] when labels is not null, and
// *lr_out = lr when lr_out is not null: everything the step reads that changes between steps.
extern "C" __global__ void __launch_bounds__(FEAR_AUGMENT_THREADS) fear_augment(const unsigned char* __restrict__ images, const unsigned* __restrict__ indices,
                                        const float* __restrict__ lut, void* __restrict__ out, int out_storage, int batch, int size,
                                        int pad, int flip, int cutout, int fill,
                                        unsigned long long seed, unsigned long long epoch,
                                        unsigned long long first_position, const unsigned* __restrict__ labels,
                                        unsigned* __restrict__ label_out, float* __restrict__ lr_out, float lr) {
    __shared__ int choice[5];  // dy, dx, flip, cutout row, cutout column
    int plane = size * size;
    for (int r = blockIdx.x; r < batch; r += gridDim.x) {
        if (threadIdx.x == 0) {
            unsigned long long pos = first_position + (unsigned long long)r;
            bool random = pad > 0 || flip || cutout > 0;
            choice[0] = random && pad > 0 ? fear_aug_uniform(fear_aug_draw(seed, epoch, pos, 0), 2 * pad + 1) : 0;
            choice[1] = random && pad > 0 ? fear_aug_uniform(fear_aug_draw(seed, epoch, pos, 1), 2 * pad + 1) : 0;
            choice[2] = random && flip ? (int)(fear_aug_draw(seed, epoch, pos, 2) >> 63) : 0;
            choice[3] = cutout > 0 ? fear_aug_uniform(fear_aug_draw(seed, epoch, pos, 3), size) : -1;
            choice[4] = cutout > 0 ? fear_aug_uniform(fear_aug_draw(seed, epoch, pos, 4), size) : -1;
            if (labels) label_out[r] = labels[indices[r]];
            if (lr_out && r == 0) *lr_out = lr;
        }
        __syncthreads();
        const unsigned char* src = images + (long long)indices[r] * 3 * plane;
        long long first = (long long)r * 3 * plane;
        int y0 = 0, y1 = 0, x0 = 0, x1 = 0;
        if (choice[3] >= 0) {
            int half = cutout / 2;
            y0 = max(choice[3] - half, 0); y1 = min(choice[3] + half, size);
            x0 = max(choice[4] - half, 0); x1 = min(choice[4] + half, size);
        }
        for (int i = threadIdx.x; i < 3 * plane; i += blockDim.x) {
            int c = i / plane, y = (i % plane) / size, x = i % size;
            int sy = y + choice[0] - pad;
            int sx = (choice[2] ? size - 1 - x : x) + choice[1] - pad;
            bool inside = sy >= 0 && sy < size && sx >= 0 && sx < size;
            float v = lut[c * 256 + (inside ? src[c * plane + sy * size + sx] : fill)];
            if (y >= y0 && y < y1 && x >= x0 && x < x1) v = 0.0f;
            if (out_storage == 1) {
                fear_store((fear_bf16*)out, first + i, v);
            } else if (out_storage == 2) {
                fear_store((fear_f16*)out, first + i, v);
            } else {
                fear_store((float*)out, first + i, v);
            }
        }
        __syncthreads();
    }
}
