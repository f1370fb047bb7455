//! The ground truth: NATS-Bench's 200-epoch test accuracy of each architecture, as
//! `data/nats_tss_200ep_test_acc.csv` holds it: a header `index,arch,cifar10,cifar100,imagenet16_120`
//! and one row per architecture. That file is built into the binary ([`BUILTIN_CSV`]), so
//! `fear evaluate` needs no download; `--ground-truth PATH` reads another file of the same form. A file with only some rows (a test fixture) or without the `arch`
//! column reads too; when `arch` is there, each string must be its index's architecture.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::data::DatasetKind;
use crate::space::{Arch, NUM_ARCHS};

/// The ground-truth columns, as the CSV header (and `fear evaluate --dataset`) names them.
pub const GROUND_TRUTH_COLUMNS: [&str; 3] = ["cifar10", "cifar100", "imagenet16_120"];

/// NATS-Bench's published 200-epoch test accuracies of all 15625 cells (see the README's
/// "Ground truth"), embedded so an installed binary has them too.
pub const BUILTIN_CSV: &str = include_str!("../../data/nats_tss_200ep_test_acc.csv");

/// How the built-in table is named in reports.
pub const BUILTIN_NAME: &str = "built-in NATS-Bench table (data/nats_tss_200ep_test_acc.csv)";

/// One column of the ground truth: the accuracy (percent) of each architecture index it lists.
#[derive(Clone, Debug)]
pub struct GroundTruth {
    /// The column read (`cifar10`, ...).
    pub column: String,
    /// `accuracy[index]`, None where the file has no row for the index.
    accuracy: Vec<Option<f64>>,
}

impl GroundTruth {
    /// Reads `column` of the CSV at `path`.
    pub fn read(path: &Path, column: &str) -> Result<GroundTruth> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading ground truth {}", path.display()))?;
        GroundTruth::parse(&text, column).with_context(|| format!("ground truth {}", path.display()))
    }

    /// Reads `column` of the CSV at `path`, or of the built-in table without one.
    pub fn read_or_builtin(path: Option<&Path>, column: &str) -> Result<GroundTruth> {
        match path {
            Some(p) => GroundTruth::read(p, column),
            None => GroundTruth::parse(BUILTIN_CSV, column).context("the built-in ground truth"),
        }
    }

    /// Parses CSV text (see the module comment).
    pub fn parse(text: &str, column: &str) -> Result<GroundTruth> {
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        let header = reader.headers().context("no header row")?.clone();
        let find = |name: &str| header.iter().position(|h| h == name);
        let index_col = find("index").context("no `index` column")?;
        let arch_col = find("arch");
        let Some(acc_col) = find(column) else {
            bail!("no `{column}` column (the header has {})", header.iter().collect::<Vec<_>>().join(", "));
        };
        let mut accuracy = vec![None; NUM_ARCHS];
        for (row, record) in reader.records().enumerate() {
            let line = row + 2;
            let record = record.with_context(|| format!("line {line}"))?;
            let field = |col: usize| record.get(col).with_context(|| format!("line {line}: too few fields"));
            let index: usize = field(index_col)?
                .parse()
                .ok()
                .filter(|i| *i < NUM_ARCHS)
                .with_context(|| format!("line {line}: index {:?} is not in 0..{NUM_ARCHS}", field(index_col).unwrap_or("")))?;
            if let Some(col) = arch_col {
                let expected = Arch::from_index(index).expect("index checked").to_string();
                if field(col)? != expected {
                    bail!("line {line}: index {index} is {expected}, not {}", field(col)?);
                }
            }
            let value: f64 = field(acc_col)?
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .with_context(|| format!("line {line}: {column} {:?} is not a number", field(acc_col).unwrap_or("")))?;
            if accuracy[index].replace(value).is_some() {
                bail!("line {line}: index {index} appears twice");
            }
        }
        Ok(GroundTruth { column: column.to_string(), accuracy })
    }

    /// The accuracy of architecture `index`, if the file lists it.
    pub fn get(&self, index: usize) -> Option<f64> {
        self.accuracy.get(index).copied().flatten()
    }

    /// How many architectures the file lists.
    pub fn len(&self) -> usize {
        self.accuracy.iter().filter(|a| a.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ground-truth column of a dataset as `fear rank` names it (`cifar10`, `cifar100`,
/// `imagenet16-120`); None for datasets NATS-Bench has no accuracies for.
pub fn column_for_dataset(name: &str) -> Option<&'static str> {
    // The column's own name is accepted too (`fear evaluate --dataset imagenet16_120`).
    let kind = if name == "imagenet16_120" { DatasetKind::ImageNet16 } else { DatasetKind::of(name) };
    kind.ground_truth_column()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_holds_every_cell_and_the_published_optima() {
        let best = |column: &str| {
            let gt = GroundTruth::read_or_builtin(None, column).unwrap();
            assert_eq!(gt.len(), NUM_ARCHS);
            (0..NUM_ARCHS).map(|i| gt.get(i).unwrap()).fold(f64::MIN, f64::max)
        };
        assert_eq!((best("cifar10"), best("cifar100"), best("imagenet16_120")), (94.3733, 73.5133, 47.3111));
    }

    #[test]
    fn reads_a_partial_file_and_checks_arch_strings() {
        let a1 = Arch::from_index(1).unwrap().to_string();
        let text = format!("index,arch,cifar10,cifar100\n1,{a1},93.66,70.29\n7,{},50.5,20\n", Arch::from_index(7).unwrap());
        let gt = GroundTruth::parse(&text, "cifar100").unwrap();
        assert_eq!((gt.get(1), gt.get(7), gt.get(2), gt.len()), (Some(70.29), Some(20.0), None, 2));
        let wrong = format!("index,arch,cifar10\n2,{a1},93.66\n");
        assert!(GroundTruth::parse(&wrong, "cifar10").unwrap_err().to_string().contains("index 2 is"));
        let msg = GroundTruth::parse("index,cifar10\n1,93\n", "imagenet16_120").unwrap_err().to_string();
        assert!(msg.contains("imagenet16_120") && msg.contains("index, cifar10"), "{msg}");
        assert!(GroundTruth::parse("index,cifar10\n1,93\n1,94\n", "cifar10").is_err());
        assert!(GroundTruth::parse("index,cifar10\n15625,93\n", "cifar10").is_err());
        assert!(GroundTruth::parse("index,cifar10\n3,abc\n", "cifar10").is_err());
    }
}
