//! Orderings and ranks. An ordering (top-n sets, top-k lists, pairwise preferences) is strict:
//! ties are broken by architecture index, ascending. Correlations instead rank tied values
//! equally (average ranks), as Spearman and Kendall's tau-b are defined and as scipy computes them.

use std::cmp::Ordering;

/// Positions `0..values.len()` ordered by value, highest first, ties by `index` ascending.
/// Values must not be NaN (a missing score is `f64::NEG_INFINITY`, so it comes last).
pub fn descending_order(values: &[f64], index: &[usize]) -> Vec<usize> {
    assert_eq!(values.len(), index.len());
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| compare_desc(values, index, a, b));
    order
}

/// The strict order of [`descending_order`] between two positions.
fn compare_desc(values: &[f64], index: &[usize], a: usize, b: usize) -> Ordering {
    debug_assert!(!values[a].is_nan() && !values[b].is_nan());
    values[b].total_cmp(&values[a]).then(index[a].cmp(&index[b]))
}

/// `place[p]` = where position p stands in `order` (0 = first).
pub fn places(order: &[usize]) -> Vec<usize> {
    let mut place = vec![0; order.len()];
    for (rank, &p) in order.iter().enumerate() {
        place[p] = rank;
    }
    place
}

/// Ranks 1..=n in ascending order of value, tied values sharing the mean of their ranks
/// (scipy's `rankdata(method='average')`).
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let end = tie_group_end(values, &order, start);
        // Ranks start+1 ..= end share their mean.
        let mean = (start + 1 + end) as f64 / 2.0;
        for &p in &order[start..end] {
            ranks[p] = mean;
        }
        start = end;
    }
    ranks
}

/// The end (exclusive) of the run of values equal to `values[order[start]]` in sorted `order`.
fn tie_group_end(values: &[f64], order: &[usize], start: usize) -> usize {
    let v = values[order[start]];
    start + order[start..].iter().take_while(|&&p| values[p] == v).count()
}

/// Sum over groups of equal values of t(t-1)/2: the pairs tied in `values`.
pub fn tied_pairs(values: &[f64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut pairs = 0u64;
    let mut start = 0;
    while start < sorted.len() {
        let t = sorted[start..].iter().take_while(|v| **v == sorted[start]).count() as u64;
        pairs += t * (t - 1) / 2;
        start += t as usize;
    }
    pairs
}

/// The pairs i < j with `seq[i] > seq[j]` (strictly), counted by merge sort in O(n log n).
pub fn count_inversions(seq: &[f64]) -> u64 {
    let mut a = seq.to_vec();
    let mut buf = vec![0.0; a.len()];
    sort_counting(&mut a, &mut buf)
}

fn sort_counting(a: &mut [f64], buf: &mut [f64]) -> u64 {
    let n = a.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut count = sort_counting(&mut a[..mid], &mut buf[..mid]) + sort_counting(&mut a[mid..], &mut buf[mid..]);
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        // Equal values are not inversions: take the left one first.
        if a[j] < a[i] {
            // a[j] is smaller than every a[i..mid].
            count += (mid - i) as u64;
            buf[k] = a[j];
            j += 1;
        } else {
            buf[k] = a[i];
            i += 1;
        }
        k += 1;
    }
    buf[k..k + mid - i].copy_from_slice(&a[i..mid]);
    k += mid - i;
    buf[k..k + n - j].copy_from_slice(&a[j..n]);
    a.copy_from_slice(&buf[..n]);
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descending_order_breaks_ties_by_index() {
        let values = [0.5, 0.9, 0.5, f64::NEG_INFINITY, 0.9];
        let index = [30, 20, 10, 0, 5];
        // 0.9 at indices 20 and 5: 5 first; 0.5 at 30 and 10: 10 first; -inf last.
        assert_eq!(descending_order(&values, &index), [4, 1, 2, 0, 3]);
        assert_eq!(places(&[4, 1, 2, 0, 3]), [3, 1, 2, 4, 0]);
    }

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(average_ranks(&[10.0, 30.0, 20.0, 30.0, 10.0, 30.0]), [1.5, 5.0, 3.0, 5.0, 1.5, 5.0]);
        assert_eq!(average_ranks(&[]), Vec::<f64>::new());
        assert_eq!(tied_pairs(&[10.0, 30.0, 20.0, 30.0, 10.0, 30.0]), 1 + 3);
    }

    #[test]
    fn inversions_match_brute_force() {
        let brute = |s: &[f64]| (0..s.len()).flat_map(|i| (i + 1..s.len()).map(move |j| (i, j))).filter(|&(i, j)| s[i] > s[j]).count() as u64;
        assert_eq!(count_inversions(&[3.0, 1.0, 2.0]), 2);
        assert_eq!(count_inversions(&[1.0, 1.0, 1.0]), 0);
        let mut x = 12345u64;
        for n in 0..60 {
            let s: Vec<f64> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((x >> 33) % 7) as f64
                })
                .collect();
            assert_eq!(count_inversions(&s), brute(&s), "{s:?}");
        }
    }
}
