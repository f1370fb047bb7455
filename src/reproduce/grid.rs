//! The shortreg variants (epochs E, batch B) `fear reproduce` runs per dataset (README, "shortreg").

use crate::data::DatasetKind;

/// One shortreg variant: E epochs at batch B.
pub type Variant = (usize, usize);

/// The paper's grid on CIFAR-10 (README, "shortreg"): batch 256 for 1..30 epochs, batch 512 for
/// 1..10, batch 1024 for 1, 2, 4, 6, 8, 10, 20 and 30. The paper gives CIFAR-100's and
/// ImageNet16-120's grids only as "similar, with batches up to 2048": those get CIFAR-10's grid and
/// batch 2048 at the epochs of batch 1024.
pub fn paper_grid(kind: DatasetKind) -> Vec<Variant> {
    const LONG: [usize; 8] = [1, 2, 4, 6, 8, 10, 20, 30];
    let mut grid: Vec<Variant> = (1..=30).map(|e| (e, 256)).collect();
    grid.extend((1..=10).map(|e| (e, 512)));
    grid.extend(LONG.iter().map(|&e| (e, 1024)));
    if matches!(kind, DatasetKind::Cifar100 | DatasetKind::ImageNet16) {
        grid.extend(LONG.iter().map(|&e| (e, 2048)));
    }
    grid
}

/// The demo's grid: a few short variants at batches that give a 500-image set 4 to 8 steps.
pub fn demo_grid() -> Vec<Variant> {
    vec![(1, 64), (2, 64), (4, 64), (8, 64), (1, 128), (2, 128), (4, 128)]
}

/// Parses `E:B[,E:B...]`.
pub fn parse_grid(spec: &str) -> Result<Vec<Variant>, String> {
    let one = |part: &str| -> Result<Variant, String> {
        let bad = || format!("{part:?}: expected EPOCHS:BATCH with both positive, e.g. 10:256");
        let (e, b) = part.trim().split_once(':').ok_or_else(bad)?;
        let (e, b): (usize, usize) = (e.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
        if e == 0 || b == 0 {
            return Err(bad());
        }
        Ok((e, b))
    };
    let grid: Vec<Variant> = spec.split(',').map(one).collect::<Result<_, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = grid.iter().find(|v| !seen.insert(**v)) {
        return Err(format!("{}:{} appears twice", dup.0, dup.1));
    }
    Ok(grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cifar10_grid_is_spec_5s() {
        let g = paper_grid(DatasetKind::Cifar10);
        assert_eq!(g.len(), 30 + 10 + 8);
        assert_eq!(g.iter().filter(|v| v.1 == 256).map(|v| v.0).max(), Some(30));
        assert!(g.contains(&(20, 1024)) && !g.contains(&(3, 1024)) && !g.iter().any(|v| v.1 == 2048));
        assert_eq!(paper_grid(DatasetKind::Cifar100).len(), 56);
    }

    #[test]
    fn grids_parse_and_bad_ones_say_why() {
        assert_eq!(parse_grid("1:8, 2:16").unwrap(), vec![(1, 8), (2, 16)]);
        for bad in ["", "1", "0:8", "1:x", "1:8,1:8"] {
            assert!(parse_grid(bad).is_err(), "{bad:?}");
        }
    }
}
