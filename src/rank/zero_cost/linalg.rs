//! The two dense linear-algebra routines the proxies need, on small (batch x batch) matrices:
//! eigenvalues of a symmetric matrix (jacob_cov) and log |det| (NASWOT).

/// Eigenvalues of the symmetric `n x n` row-major matrix `a`, ascending, by the cyclic Jacobi
/// method (rotations until every off-diagonal element is negligible next to the diagonal).
pub fn symmetric_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(a.len(), n * n, "symmetric_eigenvalues: matrix length");
    let mut m = a.to_vec();
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| m[i * n + j].powi(2)).sum();
        let diag: f64 = (0..n).map(|i| m[i * n + i].powi(2)).sum();
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                // The rotation angle that zeroes m[p][q] (Numerical Recipes' jacobi, stable form).
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
            }
        }
    }
    let mut eig: Vec<f64> = (0..n).map(|i| m[i * n + i]).collect();
    eig.sort_by(f64::total_cmp);
    eig
}

/// log |det a| of the `n x n` row-major matrix `a` (LU with partial pivoting), or `None` when
/// `a` is singular (a zero pivot).
pub fn log_abs_det(a: &[f64], n: usize) -> Option<f64> {
    assert_eq!(a.len(), n * n, "log_abs_det: matrix length");
    let mut m = a.to_vec();
    let mut logdet = 0.0;
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| m[i * n + col].abs().total_cmp(&m[j * n + col].abs()))?;
        let p = m[pivot * n + col];
        if p == 0.0 || !p.is_finite() {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                m.swap(pivot * n + k, col * n + k);
            }
        }
        logdet += p.abs().ln();
        for row in col + 1..n {
            let f = m[row * n + col] / p;
            if f != 0.0 {
                for k in col..n {
                    m[row * n + k] -= f * m[col * n + k];
                }
            }
        }
    }
    Some(logdet)
}
