//! The reduced precisions the tensor cores multiply in, as round-to-nearest-even conversions
//! from f32 written in plain integer code. `kernels/storage.cuh` and `kernels/mma.cuh` hold the
//! same algorithm line for line (`fear_f32_to_bf16`, `fear_f32_to_f16`, `fear_round_tf32`), so the
//! CPU reference and the kernels round at the same points to the same bits; no rounding depends
//! on a compiler's or a CPU's conversion instructions (the device's `cvt.rna.tf32.f32` rounds ties
//! away from zero). Only the exact widening of an IEEE half uses one on a GPU (`cvt.f32.f16`).

/// A product's input precision: what an f32 operand is rounded to before the product (`Fp32`:
/// nothing, the SIMT kernels; the others: the tensor cores' inputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands as they are.
    Fp32,
    /// 1 sign, 8 exponent, 10 mantissa bits, kept in an f32 (its low 13 bits zero).
    Tf32,
    /// bfloat16: 1 sign, 8 exponent, 7 mantissa bits.
    Bf16,
    /// IEEE half: 1 sign, 5 exponent, 10 mantissa bits.
    #[serde(rename = "fp16")]
    F16,
}

impl Precision {
    /// `x` rounded to this precision (to nearest, ties to even), as the f32 it stands for.
    pub fn round(self, x: f32) -> f32 {
        match self {
            Precision::Fp32 => x,
            Precision::Tf32 => round_tf32(x),
            Precision::Bf16 => bf16_to_f32(f32_to_bf16(x)),
            Precision::F16 => f16_to_f32(f32_to_f16(x)),
        }
    }

    /// Its name in results lines and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "fp16",
        }
    }

    /// `x` with every element rounded to this precision (as an f32, then back to `T`); `x` itself
    /// for `Fp32` (an f64 reference stays f64). What a CPU face multiplies where its kernel
    /// rounds its operands.
    pub fn round_all<T: crate::engine::Float>(self, x: std::borrow::Cow<'_, [T]>) -> std::borrow::Cow<'_, [T]> {
        if self == Precision::Fp32 {
            return x;
        }
        std::borrow::Cow::Owned(x.iter().map(|v| T::from_f64(self.round(v.as_f64() as f32) as f64)).collect())
    }

    /// Relative error a product of operands rounded to this precision may carry against the
    /// same product in f32 (a few units of the operands' last place).
    pub fn tolerance(self) -> f64 {
        match self {
            Precision::Fp32 => 1e-5,
            Precision::Tf32 => 1e-3,
            Precision::Bf16 | Precision::F16 => 1e-2,
        }
    }
}

/// Whether the bits of an f32 are a NaN.
fn is_nan_bits(u: u32) -> bool {
    u & 0x7fff_ffff > 0x7f80_0000
}

/// The bfloat16 nearest to `x` (ties to even); a NaN stays a (quiet) NaN of the same sign, and a
/// value beyond the largest bfloat16 rounds to infinity.
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if is_nan_bits(u) {
        return ((u >> 16) | 0x0040) as u16;
    }
    // Adding 0x7fff plus the lowest kept bit carries into the kept bits exactly when the dropped
    // half is above one half, or equal to it with the kept part odd.
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// The f32 a bfloat16 stands for (exact).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `x` rounded to TF32 (ties to even): its low 13 mantissa bits cleared.
pub fn round_tf32(x: f32) -> f32 {
    let u = x.to_bits();
    if u & 0x7f80_0000 == 0x7f80_0000 {
        // Infinity stays; a NaN stays a quiet NaN.
        return f32::from_bits(if is_nan_bits(u) { (u | 0x0040_0000) & 0xffff_e000 } else { u });
    }
    f32::from_bits((u + 0xfff + ((u >> 13) & 1)) & 0xffff_e000)
}

/// The IEEE half nearest to `x` (ties to even), subnormals included; a NaN stays a quiet NaN of
/// the same sign, and a value of 65520 or more in magnitude rounds to infinity.
pub fn f32_to_f16(x: f32) -> u16 {
    let u = x.to_bits();
    let sign = ((u >> 16) & 0x8000) as u16;
    let a = u & 0x7fff_ffff;
    if a >= 0x7f80_0000 {
        let nan = if a > 0x7f80_0000 { 0x0200 | ((a >> 13) & 0x03ff) as u16 } else { 0 };
        return sign | 0x7c00 | nan;
    }
    if a >= 0x477f_f000 {
        return sign | 0x7c00;
    }
    let (kept, dropped, half) = if a >= 0x3880_0000 {
        // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits.
        ((a - 0x3800_0000) >> 13, a & 0x1fff, 0x1000)
    } else if a < 0x3300_0000 {
        // Below half the smallest subnormal (2^-25): zero.
        return sign;
    } else {
        // Subnormal: the significand with its hidden bit, in units of 2^-24.
        let mantissa = (a & 0x007f_ffff) | 0x0080_0000;
        let shift = 126 - (a >> 23);
        (mantissa >> shift, mantissa & ((1 << shift) - 1), 1 << (shift - 1))
    };
    let up = dropped > half || (dropped == half && kept & 1 == 1);
    sign | (kept + up as u32) as u16
}

/// The f32 an IEEE half stands for (exact, subnormals included).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exponent = ((h >> 10) & 0x1f) as u32;
    let mantissa = (h & 0x03ff) as u32;
    let bits = match exponent {
        0 if mantissa == 0 => sign,
        0 => {
            // Subnormal, mantissa * 2^-24: normalised (a normal f32) by shifting its leading one
            // up to the hidden bit.
            let (mut m, mut e) = (mantissa, 113u32);
            while m & 0x0400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x03ff) << 13)
        }
        0x1f => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    /// Every f32 pattern class: zeros, subnormals, the edges of each format's range, ties, and a
    /// sweep of bit patterns.
    fn samples() -> Vec<f32> {
        let mut v: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            65504.0,
            65519.99,
            65520.0,
            -65520.0,
            6.1035156e-5,
            5.9604645e-8,
            2.9802322e-8,
            2.9802326e-8,
            8.940697e-8,
            1.0 + f32::EPSILON * 0.5,
        ];
        // Every 2^-k tie and near-tie around 1, 3 and the edges of the formats.
        for base in [1.0f32, 3.0, 65504.0, 3.3895314e38, 6.1035156e-5, 1e-6] {
            let b = base.to_bits();
            for d in 0..=0x2_0000u32 {
                if d % 97 == 0 || d & 0xfff == 0 || d & 0x7fff == 0 || d & 0x1fff == 0x1000 {
                    v.push(f32::from_bits(b + d));
                    v.push(-f32::from_bits(b.saturating_sub(d)));
                }
            }
        }
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push(f32::from_bits(x));
        }
        v
    }

    #[test]
    fn bf16_matches_the_half_crate() {
        for x in samples() {
            let want = bf16::from_f32(x);
            let got = f32_to_bf16(x);
            if x.is_nan() {
                assert!(bf16_to_f32(got).is_nan(), "{x:e}: {got:#06x} is not a NaN");
                assert_eq!(got & 0x8000, want.to_bits() & 0x8000, "{x:e}: NaN sign");
                continue;
            }
            assert_eq!(got, want.to_bits(), "bf16 of {x:e} ({:#010x})", x.to_bits());
            assert_eq!(bf16_to_f32(got).to_bits(), want.to_f32().to_bits());
        }
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80, "overflow rounds to infinity");
    }

    #[test]
    fn f16_matches_the_half_crate() {
        for x in samples() {
            let want = f16::from_f32(x);
            let got = f32_to_f16(x);
            if x.is_nan() {
                assert!(f16_to_f32(got).is_nan(), "{x:e}: {got:#06x} is not a NaN");
                assert_eq!(got & 0x8000, want.to_bits() & 0x8000, "{x:e}: NaN sign");
                continue;
            }
            assert_eq!(got, want.to_bits(), "f16 of {x:e} ({:#010x})", x.to_bits());
            assert_eq!(f16_to_f32(got).to_bits(), want.to_f32().to_bits(), "f32 of f16 {got:#06x}");
        }
        for h in 0..=u16::MAX {
            let (got, want) = (f16_to_f32(h), f16::from_bits(h).to_f32());
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "f16 {h:#06x}: {got:e} vs {want:e}");
        }
        assert_eq!(f32_to_f16(65520.0), 0x7c00, "overflow rounds to infinity");
        assert_eq!(f32_to_f16(2.9802322e-8), 0x0000, "2^-25 ties to even: zero");
    }

    /// TF32 is f32 with 10 mantissa bits: held to an f64 reference rounding of the same value.
    #[test]
    fn tf32_rounds_to_nearest_even() {
        for x in samples().into_iter().filter(|x| x.is_finite()) {
            let got = round_tf32(x);
            assert_eq!(got.to_bits() & 0x1fff, 0, "{x:e}: low bits kept");
            // The two TF32 neighbours of |x|: truncation, and one unit (2^(e - 137)) up, in f64
            // so that the unit above the largest finite value is 2^128 (which is infinity).
            let bits = x.to_bits() & 0x7fff_ffff;
            let down = bits & 0xffff_e000;
            let unit = 2f64.powi(((bits >> 23) as i32).max(1) - 137);
            let (dd, du) = (x.abs() as f64 - f32::from_bits(down) as f64, f32::from_bits(down) as f64 + unit - x.abs() as f64);
            let up = dd > du || (dd == du && (down >> 13) & 1 == 1);
            let want = (x.to_bits() & 0x8000_0000) | (down + if up { 0x2000 } else { 0 });
            assert_eq!(got.to_bits(), want, "tf32 of {x:e} ({:#010x})", x.to_bits());
        }
        assert_eq!(round_tf32(f32::MAX), f32::INFINITY, "overflow rounds to infinity");
        assert!(round_tf32(f32::NAN).is_nan());
        assert_eq!(round_tf32(f32::NEG_INFINITY), f32::NEG_INFINITY);
    }

    extern "C" {
        /// kernels/mma.cuh's rounding, compiled for the host emulation (kernels/emulate/).
        fn fear_emu_round(precision: i32, x: f32) -> f32;
    }

    /// The kernels' integer code (kernels/mma.cuh) and this module give the same bits.
    #[test]
    fn the_kernels_round_to_the_same_bits() {
        for (code, p) in [(0, Precision::Tf32), (1, Precision::Bf16), (2, Precision::F16)] {
            for x in samples() {
                // SAFETY: a pure function of its arguments.
                let (got, want) = (unsafe { fear_emu_round(code, x) }, p.round(x));
                assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{p:?} of {x:e}: kernel {got:e}, CPU {want:e}");
            }
        }
    }

    #[test]
    fn every_precision_rounds_within_its_tolerance() {
        for p in [Precision::Tf32, Precision::Bf16, Precision::F16] {
            for x in [1.0f32, -0.337, 2.71, 1e-3] {
                let e = ((p.round(x) - x) / x).abs() as f64;
                assert!(e < p.tolerance() / 2.0, "{p:?} of {x}: relative error {e:e}");
            }
        }
    }
}
