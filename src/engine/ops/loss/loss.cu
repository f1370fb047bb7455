// Softmax cross-entropy with the top-1 count; mirrors cpu.rs.


// One block: each thread takes rows tid, tid + blockDim, ...; writes probs, then the block adds
// the per-row losses (in double) and hits in a fixed tree. loss[0] = mean loss, correct[0] = hits.
// Labels are the device's label buffer; the argmax takes the first maximum, as the CPU op does.
extern "C" __global__ void __launch_bounds__(FEAR_LOSS_THREADS) fear_softmax_xent_forward(const float* __restrict__ logits, const unsigned* __restrict__ labels,
                                                     float* __restrict__ probs, float* __restrict__ loss,
                                                     float* __restrict__ correct, int n, int classes) {
    __shared__ double loss_part[FEAR_LOSS_THREADS];
    __shared__ int hit_part[FEAR_LOSS_THREADS];
    double my_loss = 0.0;
    int my_hits = 0;
    for (int r = threadIdx.x; r < n; r += blockDim.x) {
        const float* row = logits + (long long)r * classes;
        float* p = probs + (long long)r * classes;
        int best = 0;
        for (int j = 1; j < classes; ++j) if (row[j] > row[best]) best = j;
        float mx = row[best];
        float sum = 0.0f;
        for (int j = 0; j < classes; ++j) {
            p[j] = expf(row[j] - mx);
            sum += p[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < classes; ++j) p[j] *= inv;
        unsigned label = labels[r];
        my_hits += (unsigned)best == label;
        my_loss += log((double)sum) - (double)(row[label] - mx);
    }
    loss_part[threadIdx.x] = my_loss;
    hit_part[threadIdx.x] = my_hits;
    __syncthreads();
    for (int half = FEAR_LOSS_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            loss_part[threadIdx.x] += loss_part[threadIdx.x + half];
            hit_part[threadIdx.x] += hit_part[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        loss[0] = n > 0 ? (float)(loss_part[0] / (double)n) : __int_as_float(0x7fc00000);
        correct[0] = (float)hit_part[0];
    }
}

// dlogits += (probs - onehot(labels)) * (S / n) (dlogits = 0 + that without `accumulate`): S is
// 1, or the loss scale at loss_scale[0] when that is not null (src/engine/loss_scale.rs).
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_softmax_xent_backward(const float* __restrict__ probs, const unsigned* __restrict__ labels,
                                                      float* __restrict__ dlogits, int n, int classes, int accumulate,
                                                      const float* __restrict__ loss_scale) {
    float scale = (loss_scale ? loss_scale[0] : 1.0f) / (float)n;
    int total = n * classes;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int r = i / classes, j = i % classes;
        float t = (unsigned)j == labels[r] ? 1.0f : 0.0f;
        dlogits[i] = (accumulate ? dlogits[i] : 0.0f) + scale * (probs[i] - t);
    }
}

// slots[2*slot..] = (loss, correct) of the step just run: a step's figures kept on the device, so
// a training loop reads an epoch's worth once instead of waiting for each step.
extern "C" __global__ void __launch_bounds__(FEAR_ELEMENTWISE_THREADS) fear_record_step(const float* __restrict__ loss, const float* __restrict__ correct,
                                                                            float* __restrict__ slots, int slot) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        slots[2 * slot] = loss[0];
        slots[2 * slot + 1] = correct[0];
    }
}
