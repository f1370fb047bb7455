// A batch norm's output at one element, from its input v and the channel's coefficients
// coef[4*ch..] = (mean_hi, mean_lo, scale, beta): the one expression fear_bn_apply writes and
// every consumer that normalises as it reads (node sums, convolutions) evaluates: the same bits.
__device__ __forceinline__ float fear_bn_normalise(float v, const float* __restrict__ coef, int ch) {
    return ((v - coef[4 * ch]) - coef[4 * ch + 1]) * coef[4 * ch + 2] + coef[4 * ch + 3];
}
