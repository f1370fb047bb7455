//! Softmax cross-entropy (mean over the batch) and top-1 accuracy.
use crate::engine::Float;

/// Writes softmax probabilities [n, classes]; returns (mean loss, number of rows whose argmax,
/// first maximum on ties, equals the label).
pub fn softmax_cross_entropy_forward<T: Float>(_n: usize, _classes: usize, _logits: &[T], _labels: &[u32], _probs: &mut [T]) -> (T, usize) { unimplemented!() }
/// dlogits += dloss * (probs - onehot(labels)) / n.
pub fn softmax_cross_entropy_backward<T: Float>(_n: usize, _classes: usize, _probs: &[T], _labels: &[u32], _dloss: T, _dlogits: &mut [T]) { unimplemented!() }
/// Rows whose argmax (first maximum on ties) equals the label.
pub fn top1_correct<T: Float>(_n: usize, _classes: usize, _logits: &[T], _labels: &[u32]) -> usize { unimplemented!() }
