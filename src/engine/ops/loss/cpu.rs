//! Softmax cross-entropy (mean over the batch) and top-1 accuracy.
//!
//! Rows are short (10 classes), so these run sequentially; the loss is accumulated in f64.
use crate::engine::Float;

fn check(n: usize, classes: usize, logits: usize, labels: &[u32]) {
    assert!(classes > 0, "softmax_cross_entropy: no classes");
    assert_eq!(logits, n * classes, "softmax_cross_entropy: logits length");
    assert_eq!(labels.len(), n, "softmax_cross_entropy: labels length");
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes) {
        panic!("softmax_cross_entropy: label {bad} out of range for {classes} classes");
    }
}

/// Index of the first maximum of a row; like PyTorch's argmax, the first NaN counts as the maximum.
fn argmax<T: Float>(row: &[T]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        if row[best].is_nan() {
            break;
        }
        if v > row[best] || v.is_nan() {
            best = j;
        }
    }
    best
}

/// Writes softmax probabilities [n, classes]; returns (mean loss, number of rows whose argmax,
/// first maximum on ties, equals the label).
pub fn softmax_xent_forward<T: Float>(n: usize, classes: usize, logits: &[T], labels: &[u32], probs: &mut [T]) -> (T, usize) {
    check(n, classes, logits.len(), labels);
    assert_eq!(probs.len(), n * classes, "softmax_cross_entropy: probs length");
    let mut loss = 0.0f64;
    let mut correct = 0;
    for ((row, p), &label) in logits.chunks_exact(classes).zip(probs.chunks_exact_mut(classes)).zip(labels) {
        let best = argmax(row);
        correct += (best == label as usize) as usize;
        let max = row[best];
        let mut sum = T::zero();
        for (p, &v) in p.iter_mut().zip(row) {
            *p = (v - max).exp();
            sum = sum + *p;
        }
        let inv = T::one() / sum;
        p.iter_mut().for_each(|p| *p = *p * inv);
        // -log softmax[label] = log(sum) - (x[label] - max)
        loss += sum.as_f64().ln() - (row[label as usize] - max).as_f64();
    }
    let mean = if n > 0 { loss / n as f64 } else { f64::NAN };
    (T::from_f64(mean), correct)
}

/// dlogits += dloss * (probs - onehot(labels)) / n.
pub fn softmax_xent_backward<T: Float>(n: usize, classes: usize, probs: &[T], labels: &[u32], dloss: T, dlogits: &mut [T]) {
    check(n, classes, probs.len(), labels);
    assert_eq!(dlogits.len(), n * classes, "softmax_cross_entropy: dlogits length");
    if n == 0 {
        return;
    }
    let scale = dloss / T::from_f64(n as f64);
    for ((d, p), &label) in dlogits.chunks_exact_mut(classes).zip(probs.chunks_exact(classes)).zip(labels) {
        for (j, (d, &p)) in d.iter_mut().zip(p).enumerate() {
            let t = if j == label as usize { T::one() } else { T::zero() };
            *d = *d + scale * (p - t);
        }
    }
}

/// Rows whose argmax (first maximum on ties) equals the label.
pub fn top1_correct<T: Float>(n: usize, classes: usize, logits: &[T], labels: &[u32]) -> usize {
    check(n, classes, logits.len(), labels);
    logits.chunks_exact(classes).zip(labels).filter(|(row, &l)| argmax(row) == l as usize).count()
}
