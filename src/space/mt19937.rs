//! MT19937, the Mersenne Twister behind CPython's `random` module, with just enough of CPython's
//! wrapper (`random.seed(int)`, `getrandbits`, `_randbelow`, `shuffle`) to reproduce the
//! NATS-Bench index order bit for bit.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The 32-bit Mersenne Twister (Matsumoto and Nishimura's reference `mt19937ar.c`).
#[derive(Clone)]
pub struct Mt19937 {
    mt: [u32; N],
    mti: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mt19937").field("mti", &self.mti).finish_non_exhaustive()
    }
}

impl Mt19937 {
    /// `init_genrand(s)`: seeds from one 32-bit word.
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32.wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { mt, mti: N }
    }

    /// `init_by_array(key)`: seeds from an array of 32-bit words.
    pub fn from_key(key: &[u32]) -> Self {
        let mut g = Self::new(19_650_218);
        let mt = &mut g.mt;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_664_525)).wrapping_add(key[j]).wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        g
    }

    /// CPython's `random.seed(n)` for a non-negative integer `n`: `init_by_array` with the 32-bit
    /// words of `n`, least significant first (`[0]` for zero).
    pub fn from_python_seed(seed: u64) -> Self {
        let (lo, hi) = (seed as u32, (seed >> 32) as u32);
        if hi == 0 {
            Self::from_key(&[lo])
        } else {
            Self::from_key(&[lo, hi])
        }
    }

    /// `genrand_int32()`: the next 32-bit output.
    pub fn genrand_uint32(&mut self) -> u32 {
        if self.mti >= N {
            self.twist();
        }
        let mut y = self.mt[self.mti];
        self.mti += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        let mag = |y: u32| if y & 1 == 0 { 0 } else { MATRIX_A };
        for kk in 0..N {
            let y = (self.mt[kk] & UPPER_MASK) | (self.mt[(kk + 1) % N] & LOWER_MASK);
            self.mt[kk] = self.mt[(kk + M) % N] ^ (y >> 1) ^ mag(y);
        }
        self.mti = 0;
    }

    /// CPython's `getrandbits(k)` for `1 <= k <= 64`: whole 32-bit words least significant first,
    /// the last one shifted down to its remaining bits.
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!((1..=64).contains(&k), "getrandbits: k = {k} is outside 1..=64");
        if k <= 32 {
            return u64::from(self.genrand_uint32() >> (32 - k));
        }
        let lo = u64::from(self.genrand_uint32());
        let hi = u64::from(self.genrand_uint32() >> (64 - k));
        lo | (hi << 32)
    }

    /// CPython's `_randbelow(n)` (`_randbelow_with_getrandbits`): a uniform integer in `0..n` by
    /// drawing `bit_length(n)` bits and rejecting results `>= n`. Panics when `n == 0`.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randbelow: n must be positive");
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// CPython's `random.shuffle(x)`: Fisher-Yates from the end, `j = randbelow(i + 1)`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by CPython 3 (`random.seed(s); [random.getrandbits(32) for _ in ...]`).
    #[test]
    fn matches_cpython_getrandbits32() {
        let cases: [(u64, &[u32]); 4] = [
            (88, &[1_707_201_716, 4_182_107_318, 813_946_014, 1_429_399_738, 3_875_947_387]),
            (5, &[2_675_342_405, 1_097_127_993, 3_185_950_873]),
            (0, &[3_626_764_237, 1_654_615_998, 3_255_389_356]),
            ((1 << 40) + 7, &[2_635_837_658, 3_209_733_218, 3_500_038_837]),
        ];
        for (seed, want) in cases {
            let mut g = Mt19937::from_python_seed(seed);
            let got: Vec<u32> = (0..want.len()).map(|_| g.genrand_uint32()).collect();
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn reference_init_genrand_5489() {
        // mt19937ar.c's default seed; the 10000th output is the published check value.
        let mut g = Mt19937::new(5489);
        assert_eq!(g.genrand_uint32(), 3_499_211_612);
        let last = (1..10_000).map(|_| g.genrand_uint32()).last().unwrap();
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn shuffle_matches_cpython() {
        // random.seed(88); l = list(range(10)); random.shuffle(l)
        let mut g = Mt19937::from_python_seed(88);
        let mut v: Vec<u32> = (0..10).collect();
        g.shuffle(&mut v);
        assert_eq!(v, [8, 2, 9, 4, 0, 7, 1, 5, 3, 6]);
    }

    #[test]
    fn wide_getrandbits_and_randbelow_match_cpython() {
        // random.seed(3); getrandbits(40), getrandbits(64)
        let mut g = Mt19937::from_python_seed(3);
        assert_eq!(g.getrandbits(40), 649_562_111_997);
        assert_eq!(g.getrandbits(64), 2_405_875_930_906_139_466);
        // r = random.Random(3); [r._randbelow(10**12) for 3], then [r._randbelow(7) for 5]
        let mut g = Mt19937::from_python_seed(3);
        let big: Vec<u64> = (0..3).map(|_| g.randbelow(1_000_000_000_000)).collect();
        assert_eq!(big, [649_562_111_997, 144_071_367_498, 522_284_859_645]);
        let small: Vec<u64> = (0..5).map(|_| g.randbelow(7)).collect();
        assert_eq!(small, [5, 4, 0, 4, 0]);
    }

    #[test]
    fn randbelow_one_consumes_draws_and_returns_zero() {
        let mut g = Mt19937::from_python_seed(1);
        for _ in 0..100 {
            assert_eq!(g.randbelow(1), 0);
        }
    }
}
