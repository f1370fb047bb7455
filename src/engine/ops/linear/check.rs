//! The linear layer's self-test cases (see [`crate::engine::cuda::selftest`]).

use super::{LinearGeom, LinearKernel};
use crate::engine::cuda::selftest::{Cases, REDUCTION_TOLERANCE};
use crate::engine::precision::Precision;

pub(crate) fn cases(cases: &mut Cases) {
    let g = LinearGeom { n: 3, d_in: 7, d_out: 10 };
    for (name, bias) in [("linear_forward", true), ("linear_forward_no_bias", false)] {
        cases.add(name, REDUCTION_TOLERANCE, |c| {
            let (x, w) = (c.loc(21), c.loc(70));
            let b = bias.then(|| c.loc(10));
            LinearKernel::Forward { g, x, w, b, y: c.loc(30), precision: Precision::Fp32 }.into()
        });
    }
    // The tensor-core forward: two row tiles (the second partial), d_in not a multiple of 8, two
    // column tiles of which the second is partial; against the CPU face rounding alike.
    let tiles = LinearGeom { n: 19, d_in: 13, d_out: 10 };
    for precision in [Precision::Tf32, Precision::Bf16, Precision::F16] {
        for bias in [true, false] {
            let name = format!("linear_forward_{}{}", precision.name(), if bias { "" } else { "_no_bias" });
            cases.add(&name, REDUCTION_TOLERANCE, |c| {
                let (x, w) = (c.loc(19 * 13), c.loc(10 * 13));
                let b = bias.then(|| c.loc(10));
                LinearKernel::Forward { g: tiles, x, w, b, y: c.loc(19 * 10), precision }.into()
            });
        }
    }
    for (mode, accumulate) in [("", true), ("_assign", false)] {
        cases.add(&format!("linear_backward{mode}"), REDUCTION_TOLERANCE, |c| {
            let (x, w, dy) = (c.loc(21), c.loc(70), c.loc(30));
            LinearKernel::Backward { g, x, w, dy, dx: Some(c.loc(21)), dw: Some(c.loc(70)), db: Some(c.loc(10)), accumulate, precision: Precision::Fp32 }.into()
        });
    }
    // The tensor-core gradients on the same odd shape: dx's K (d_out = 10) and dw's rows (d_out)
    // end inside a tile, dw's K (n = 19) inside an 8-step; each gradient alone, and all three.
    for precision in [Precision::Tf32, Precision::Bf16, Precision::F16] {
        for (mode, accumulate, dx, dw) in [("", true, true, true), ("_assign", false, true, false), ("_weight", true, false, true)] {
            let name = format!("linear_backward_{}{mode}", precision.name());
            cases.add(&name, REDUCTION_TOLERANCE, |c| {
                let (x, w, dy) = (c.loc(19 * 13), c.loc(10 * 13), c.loc(19 * 10));
                let (dx, dw) = (dx.then(|| c.loc(19 * 13)), dw.then(|| c.loc(10 * 13)));
                LinearKernel::Backward { g: tiles, x, w, dy, dx, dw, db: Some(c.loc(10)), accumulate, precision }.into()
            });
        }
    }
}
