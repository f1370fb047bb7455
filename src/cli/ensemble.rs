//! `fear ensemble`: rank ensembles of results files (and AZ-NAS's `az_nas`, a population score)
//! written as a results file of their own: one line per architecture with each ensemble's score
//! under its name and its time under `NAME_time_s`, as a zero-cost line holds its proxies', so
//! `fear evaluate`, `fear merge` and later ensembles read it like any zero-cost file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

use crate::eval::ensemble::{parse_ensemble, EnsembleSpec, Rule, AZ_NAS_MEMBERS};
use crate::eval::{ArchResult, MethodResults, NotOk};
use crate::schema::{EnsembleRecord, LineHead, RunFields, Status};
use crate::space::Arch;

use super::evaluate::load_methods;
use super::UsageError;

#[derive(Args, Debug)]
pub struct EnsembleArgs {
    /// Results files whose methods the ensembles combine, read as `fear evaluate` reads them
    /// (each proxy of a zero-cost file, fear, fear-epochs, shortreg-eE-bB, az_nas, ...).
    #[arg(value_parser = crate::util::path_arg, required = true)]
    pub results: Vec<PathBuf>,
    /// A rank ensemble NAME=RULE:METHOD,METHOD,... as in `fear evaluate` (RULE logrank,
    /// meanrank or vote), written under NAME. Repeatable. `az_nas` is written besides whenever a
    /// file holds AZ-NAS's four scores.
    #[arg(long, value_parser = parse_ensemble)]
    pub ensemble: Vec<EnsembleSpec>,
    /// The results file to write (JSON Lines, replaced as a whole).
    #[arg(value_parser = crate::util::path_arg, long)]
    pub out: PathBuf,
    /// As in `fear evaluate`: `drop` leaves an architecture a member did not score out of the
    /// ranks and the file (evaluate's default: the file then evaluates as the ensemble does
    /// there); `last` ranks it lowest in that member's ranks and writes it without a score.
    #[arg(long, value_enum, default_value_t = NotOk::Drop)]
    pub not_ok: NotOk,
}

/// One column of the file: its name, how it was made, its scores.
struct Column<'a> {
    name: String,
    made: String,
    method: &'a MethodResults,
}

pub fn run(args: EnsembleArgs) -> Result<()> {
    let mut inputs: Vec<(String, Vec<Value>)> = Vec::new();
    let loaded = load_methods(&args.results, args.not_ok, &args.ensemble, |file, lines| inputs.push((file.to_string(), lines.to_vec())))?;
    one_dataset(&inputs)?;
    let first_ensemble = loaded.methods.len() - args.ensemble.len();
    let mut columns = Vec::new();
    match &loaded.methods[loaded.dropped.len()..first_ensemble] {
        [] => {}
        [az] => {
            let spec = EnsembleSpec { name: "az_nas".into(), rule: Rule::LogRank, members: AZ_NAS_MEMBERS.iter().map(|m| m.to_string()).collect() };
            columns.push(Column { name: spec.name.clone(), made: spec.to_string(), method: az });
        }
        several => {
            let files: Vec<&str> = several.iter().map(|m| m.file.as_str()).collect();
            eprintln!("warning: az_nas not written: {} files hold AZ-NAS's four scores ({}); give one of them to write it", files.len(), files.join(", "));
        }
    }
    for (spec, method) in args.ensemble.iter().zip(&loaded.methods[first_ensemble..]) {
        columns.push(Column { name: spec.name.clone(), made: spec.to_string(), method });
    }
    check_columns(&columns, args.not_ok)?;
    let text = lines(&columns, &inputs, args.not_ok)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::util::write_atomically(&args.out, text.as_bytes())?;
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    println!("{} architectures, scored by {}, in {}", text.lines().count(), names.join(", "), args.out.display());
    Ok(())
}

/// Rankings of different datasets do not combine.
fn one_dataset(inputs: &[(String, Vec<Value>)]) -> Result<()> {
    let mut first: Option<(String, &str)> = None;
    for (file, lines) in inputs {
        for dataset in lines.iter().filter_map(|l| RunFields::of(l).dataset) {
            match &first {
                None => first = Some((dataset, file)),
                Some((ds, f)) if *ds != dataset => {
                    return Err(UsageError(format!("{f} was written on {ds} but {file} on {dataset}: an ensemble combines rankings of one dataset")).into())
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// Each column needs a name no other field of the line has, and an architecture to score.
fn check_columns(columns: &[Column], not_ok: NotOk) -> Result<()> {
    let usage = |m: String| Err(UsageError(m).into());
    if columns.is_empty() {
        return usage(format!("nothing to write: no --ensemble, and no file holds AZ-NAS's four scores ({})", AZ_NAS_MEMBERS.join(", ")));
    }
    let reserved: BTreeSet<&str> = EnsembleRecord::OWN.iter().chain(&RunFields::KEYS).chain(&["score", "time_s"]).copied().collect();
    let mut seen = BTreeSet::new();
    for c in columns {
        if reserved.contains(c.name.as_str()) || c.name.ends_with("_time_s") {
            return usage(format!("--ensemble {}: the name is a field of the line; choose another (nor one ending in _time_s)", c.name));
        }
        if !seen.insert(c.name.as_str()) {
            return usage(format!("--ensemble {}: two columns of that name (az_nas is written whenever a file holds its four scores)", c.name));
        }
        if c.method.archs.is_empty() {
            return usage(match not_ok {
                NotOk::Drop => format!("{}: no architecture is scored by all of its members (under --not-ok drop an unscored one does not count)", c.made),
                NotOk::Last => format!("{}: its members hold no architecture in common", c.made),
            });
        }
    }
    Ok(())
}

/// The file's text: a line per architecture some column holds, by index.
fn lines(columns: &[Column], inputs: &[(String, Vec<Value>)], not_ok: NotOk) -> Result<String> {
    let heads: Vec<LineHead> = inputs.iter().flat_map(|(_, lines)| lines.iter().filter_map(LineHead::of)).collect();
    let mut arch_of: HashMap<u64, &str> = HashMap::new();
    let mut not_ok_status: HashMap<u64, Status> = HashMap::new();
    for h in &heads {
        if let Some(a) = &h.arch {
            arch_of.entry(h.index).or_insert(a);
        }
        if h.status() != Status::Ok {
            not_ok_status.entry(h.index).or_insert(h.status());
        }
    }
    let all_lines = inputs.iter().flat_map(|(_, lines)| lines);
    let run = all_lines.map(RunFields::of).reduce(|a, b| a.common(&b)).unwrap_or_default();
    let made: Vec<&str> = columns.iter().map(|c| c.made.as_str()).collect();
    let by_index: Vec<HashMap<usize, &ArchResult>> = columns.iter().map(|c| c.method.archs.iter().map(|a| (a.index, a)).collect()).collect();
    let indices: BTreeSet<usize> = by_index.iter().flat_map(|m| m.keys().copied()).collect();
    let mut text = String::new();
    for index in indices {
        let mut scores = BTreeMap::new();
        for (c, archs) in columns.iter().zip(&by_index) {
            let a = archs.get(&index);
            scores.insert(c.name.clone(), a.and_then(|a| a.score));
            scores.insert(format!("{}_time_s", c.name), a.and_then(|a| a.time_s).filter(|t| t.is_finite()));
        }
        let scored = columns.iter().any(|c| scores[&c.name].is_some());
        let arch = arch_of.get(&(index as u64)).map_or_else(|| Arch::from_index(index).expect("indices were checked").to_string(), |a| a.to_string());
        let record = EnsembleRecord {
            index,
            arch,
            status: if scored { Status::Ok } else { not_ok_status.get(&(index as u64)).copied().unwrap_or(Status::Ok) },
            scores,
            ensembles: made.join("; "),
            not_ok: if not_ok == NotOk::Drop { "drop" } else { "last" }.to_string(),
            run: run.clone(),
        };
        text.push_str(&serde_json::to_string(&serde_json::to_value(&record)?)?);
        text.push('\n');
    }
    Ok(text)
}
