//! `fear evaluate` and the metrics under it: hand-computed examples (ties included), the bins and
//! correlations against brute-force implementations, perfect rankings, and a noisy example
//! against scipy (fixtures written by scripts/eval_reference.py).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fear::eval::metrics::{kendall_tau_b, pairwise_accuracy, precision_at, regret_at, spearman};
use fear::eval::{bins, evaluate, vote, ArchResult, Bin, GroundTruth, Kind, MethodResults, Population, BIN_PERCENTS};
use serde_json::Value;

mod common;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval")
}

fn fear(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fear")).args(args).output().expect("running fear")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

/// The population of the hand-worked example: six architectures, a tie in ground truth (80),
/// a tie in score (0.7) and two without a score.
fn hand_example() -> Population {
    let mut pop = Population::default();
    let rows = [
        (5, 90.0, Some(0.7), 1.0),
        (3, 80.0, Some(0.9), 2.0),
        (9, 80.0, None, 3.0),
        (1, 70.0, Some(0.7), 4.0),
        (7, 60.0, Some(0.2), 5.0),
        (2, 50.0, None, 6.0),
    ];
    for (index, truth, score, time) in rows {
        pop.push(index, truth, score, Some(time));
    }
    pop
}

#[test]
fn metrics_of_the_hand_worked_example() {
    let pop = hand_example();
    // Truth order: 90, then the 80s by index (3 before 9), 70, 60, 50: positions 0..6.
    assert_eq!(pop.truth_order(), [0, 1, 2, 3, 4, 5]);
    // Score order: 0.9; the 0.7s by index (1 before 5); 0.2; the unscored by index (2 before 9).
    assert_eq!(pop.score_order(), [1, 3, 0, 4, 5, 2]);
    assert_eq!(pop.unscored(), 2);
    // Average ranks: truth [6, 4.5, 4.5, 3, 2, 1], score [4.5, 6, 1.5, 4.5, 3, 1.5];
    // sum dx dy = 8.25, sum dx^2 = 17, sum dy^2 = 16.5.
    assert!(close(spearman(&pop.truth, &pop.score).unwrap(), 8.25 / (17.0f64 * 16.5).sqrt()));
    // 9 concordant, 3 discordant, 1 pair tied in truth, 2 tied in score, of 15.
    assert!(close(kendall_tau_b(&pop.truth, &pop.score).unwrap(), 6.0 / (14.0f64 * 13.0).sqrt()));
    // Truth in the method's order: 80 70 90 60 50 80; 9 of the 14 untied pairs the right way.
    let truth_by_score: Vec<f64> = pop.score_order().iter().map(|&p| pop.truth[p]).collect();
    assert!(close(pairwise_accuracy(&truth_by_score).unwrap(), 9.0 / 14.0));
    let (t, s) = (pop.truth_order(), pop.score_order());
    assert_eq!(precision_at(&t, &s, 1), Some(0.0));
    assert_eq!(precision_at(&t, &s, 4), Some(0.75));
    assert_eq!(precision_at(&t, &s, 10), None);
    assert_eq!(regret_at(&pop.truth, &s, 1), Some(10.0));
    assert_eq!(regret_at(&pop.truth, &s, 3), Some(0.0));
    assert_eq!(regret_at(&pop.truth, &s, 7), None);
}

#[test]
fn bins_of_the_hand_worked_example() {
    let b = bins(&hand_example());
    let row = |pct: usize| b.iter().find(|b| b.top_pct == pct).unwrap().clone();
    // 10%: floor(0.6) = 0 architectures.
    assert_eq!(row(10), Bin { top_pct: 10, n: 0, spearman: None, common_ratio: None, mean_time_s: None });
    // 20%: the best alone; the method's first is another.
    assert_eq!(row(20), Bin { top_pct: 20, n: 1, spearman: None, common_ratio: Some(0.0), mean_time_s: Some(1.0) });
    // 40%: {90, 80 (index 3)} against the method's {index 3, index 1}; within, the order is reversed.
    assert_eq!(row(40), Bin { top_pct: 40, n: 2, spearman: Some(-1.0), common_ratio: Some(0.5), mean_time_s: Some(1.5) });
    // 50%: truth ranks [3, 1.5, 1.5], score ranks [2, 3, 1]: uncorrelated; 2 of 3 shared.
    let half = row(50);
    assert_eq!((half.n, half.spearman, half.mean_time_s), (3, Some(0.0), Some(2.0)));
    assert!(close(half.common_ratio.unwrap(), 2.0 / 3.0));
    assert_eq!(row(70).common_ratio, Some(0.75));
    assert_eq!(row(90).common_ratio, Some(0.8));
    assert_eq!((row(100).n, row(100).common_ratio, row(100).mean_time_s), (6, Some(1.0), Some(3.5)));
}

#[test]
fn textbook_values() {
    // No ties: d = (-1, 1, -1, 1, 0), rho = 1 - 6 * 4 / (5 * 24); 8 concordant, 2 discordant.
    let (x, y) = ([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0]);
    assert!(close(spearman(&x, &y).unwrap(), 0.8));
    assert!(close(kendall_tau_b(&x, &y).unwrap(), 0.6));
    // A tie in x: ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): rho = 3 / sqrt(10); tau-b = 5 / sqrt(30).
    let (x, y) = ([1.0, 2.0, 2.0, 3.0], [1.0, 3.0, 2.0, 4.0]);
    assert!(close(spearman(&x, &y).unwrap(), 3.0 / 10f64.sqrt()));
    assert!(close(kendall_tau_b(&x, &y).unwrap(), 5.0 / 30f64.sqrt()));
    // Undefined: one value, or a constant.
    assert_eq!(spearman(&[1.0], &[2.0]), None);
    assert_eq!(kendall_tau_b(&[1.0, 2.0], &[3.0, 3.0]), None);
    assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
}

/// A small deterministic generator for random populations.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A random population with many ties (few distinct values) and some unscored architectures.
fn random_population(rng: &mut Lcg, n: usize) -> Population {
    let mut pop = Population::default();
    let mut indices: Vec<usize> = (0..15625).collect();
    for i in 0..n {
        let j = i + rng.below((indices.len() - i) as u64) as usize;
        indices.swap(i, j);
        let score = (rng.below(5) != 0).then(|| rng.below(6) as f64 / 10.0);
        pop.push(indices[i], 50.0 + rng.below(8) as f64, score, (rng.below(4) != 0).then(|| rng.below(100) as f64));
    }
    pop
}

/// Brute force: does position a come before b when sorting `values` descending, ties by index?
fn before(values: &[f64], index: &[usize], a: usize, b: usize) -> bool {
    values[a] > values[b] || (values[a] == values[b] && index[a] < index[b])
}

/// Brute force: the positions of the top n (those with fewer than n positions before them).
fn top_n(values: &[f64], index: &[usize], n: usize) -> Vec<usize> {
    (0..values.len()).filter(|&p| (0..values.len()).filter(|&q| before(values, index, q, p)).count() < n).collect()
}

/// Brute force: average ranks by counting (rank = below + (equal + 1) / 2).
fn naive_ranks(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|x| {
            let below = v.iter().filter(|y| *y < x).count() as f64;
            let equal = v.iter().filter(|y| *y == x).count() as f64;
            below + (equal + 1.0) / 2.0
        })
        .collect()
}

fn naive_spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let (rx, ry) = (naive_ranks(x), naive_ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let sxy: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let syy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    (x.len() >= 2 && sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

fn naive_kendall(x: &[f64], y: &[f64]) -> Option<f64> {
    let (mut c, mut d, mut tx, mut ty, mut pairs) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            pairs += 1.0;
            // Signs by comparison: -inf - -inf would be NaN.
            let sign = |a: f64, b: f64| {
                if a > b {
                    1
                } else if a < b {
                    -1
                } else {
                    0
                }
            };
            let (sx, sy) = (sign(x[i], x[j]), sign(y[i], y[j]));
            if sx == 0 {
                tx += 1.0
            }
            if sy == 0 {
                ty += 1.0
            }
            if sx * sy > 0 {
                c += 1.0
            } else if sx * sy < 0 {
                d += 1.0
            }
        }
    }
    let den = ((pairs - tx) * (pairs - ty)).sqrt();
    (den > 0.0).then(|| (c - d) / den)
}

fn naive_bin(pop: &Population, pct: usize) -> Bin {
    let n = pop.len() * pct / 100;
    let members = top_n(&pop.truth, &pop.index, n);
    let by_score = top_n(&pop.score, &pop.index, n);
    let truth: Vec<f64> = members.iter().map(|&p| pop.truth[p]).collect();
    let score: Vec<f64> = members.iter().map(|&p| pop.score[p]).collect();
    let times: Vec<f64> = members.iter().filter_map(|&p| pop.time_s[p]).collect();
    Bin {
        top_pct: pct,
        n,
        spearman: naive_spearman(&truth, &score),
        common_ratio: (n > 0).then(|| members.iter().filter(|p| by_score.contains(p)).count() as f64 / n as f64),
        mean_time_s: (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64),
    }
}

fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b),
        (a, b) => a == b,
    }
}

#[test]
fn bins_and_correlations_match_brute_force() {
    let mut rng = Lcg(7);
    for trial in 0..200 {
        let pop = random_population(&mut rng, 1 + trial % 37);
        for (fast, slow) in bins(&pop).iter().zip(BIN_PERCENTS.map(|pct| naive_bin(&pop, pct))) {
            assert_eq!((fast.top_pct, fast.n), (slow.top_pct, slow.n));
            assert!(
                same(fast.spearman, slow.spearman) && same(fast.common_ratio, slow.common_ratio) && same(fast.mean_time_s, slow.mean_time_s),
                "trial {trial}: {fast:?} vs {slow:?}"
            );
        }
        assert!(same(kendall_tau_b(&pop.truth, &pop.score), naive_kendall(&pop.truth, &pop.score)), "trial {trial}");
        assert!(same(spearman(&pop.truth, &pop.score), naive_spearman(&pop.truth, &pop.score)), "trial {trial}");
        // Pairwise accuracy: over untied pairs, does the method's strict order put the better first?
        let (mut right, mut pairs) = (0.0, 0.0);
        for a in 0..pop.len() {
            for b in 0..pop.len() {
                if pop.truth[a] > pop.truth[b] {
                    pairs += 1.0;
                    if before(&pop.score, &pop.index, a, b) {
                        right += 1.0
                    }
                }
            }
        }
        let truth_by_score: Vec<f64> = pop.score_order().iter().map(|&p| pop.truth[p]).collect();
        assert!(same(pairwise_accuracy(&truth_by_score), (pairs > 0.0).then(|| right / pairs)), "trial {trial}");
    }
}

fn method(name: &str, kind: Kind, rows: &[(usize, Option<f64>)]) -> MethodResults {
    MethodResults {
        name: name.into(),
        kind,
        file: format!("{name}.jsonl"),
        archs: rows.iter().map(|&(index, score)| ArchResult { index, score, time_s: Some(1.0), stage1_s: None, reached_threshold: false }).collect(),
    }
}

fn ground_truth(rows: &[(usize, f64)]) -> GroundTruth {
    let text: String = std::iter::once("index,cifar10\n".to_string()).chain(rows.iter().map(|(i, a)| format!("{i},{a}\n"))).collect();
    GroundTruth::parse(&text, "cifar10").unwrap()
}

#[test]
fn vote_is_the_pairwise_majority() {
    // Three proxies in a Condorcet cycle: A ranks 0 > 1 > 2, B 1 > 2 > 0, C 2 > 0 > 1. The majority
    // says 0 > 1 (right), 1 > 2 (right), 2 > 0 (wrong): 2 of 3.
    let truth = ground_truth(&[(0, 3.0), (1, 2.0), (2, 1.0), (3, 0.5)]);
    let methods = [
        method("synflow", Kind::ZeroCost, &[(0, Some(3.0)), (1, Some(2.0)), (2, Some(1.0)), (3, Some(9.0))]),
        method("jacob_cov", Kind::ZeroCost, &[(0, Some(1.0)), (1, Some(3.0)), (2, Some(2.0))]),
        method("snip", Kind::ZeroCost, &[(0, Some(2.0)), (1, Some(1.0)), (2, Some(3.0))]),
    ];
    // Index 3 is not held by all three: left out.
    let v = vote(&methods, &truth).unwrap().unwrap();
    assert_eq!((v.name.as_str(), v.n, v.spearman), ("vote", 3, None));
    assert!(close(v.pairwise_accuracy.unwrap(), 2.0 / 3.0));
    assert!(vote(&methods[..2], &truth).unwrap().is_none(), "vote needs all three proxies");
}

#[test]
fn a_perfect_ranking_scores_one_everywhere() {
    let check = |truth: &GroundTruth, indices: &[usize]| {
        let m = method("fear", Kind::Fear, &indices.iter().map(|&i| (i, truth.get(i))).collect::<Vec<_>>());
        let r = evaluate(&m, truth).unwrap();
        assert_eq!((r.spearman, r.kendall, r.pairwise_accuracy), (Some(1.0), Some(1.0), Some(1.0)), "{}", truth.column);
        for b in r.bins.iter().filter(|b| b.n >= 2) {
            assert_eq!((b.spearman, b.common_ratio), (Some(1.0), Some(1.0)), "{} {b:?}", truth.column);
        }
        assert!(r.top_k.iter().all(|t| t.precision.is_none_or(|p| p == 1.0) && t.regret.is_none_or(|r| r == 0.0)));
    };
    // The fixture's 300 rows (with the tie at 94.37 between 6111 and 13714).
    let path = fixtures().join("ground_truth.csv");
    let fixture = GroundTruth::read(&path, "cifar10").unwrap();
    let indices: Vec<usize> = (0..15625).filter(|&i| fixture.get(i).is_some()).collect();
    assert_eq!(fixture.get(6111), fixture.get(13714));
    check(&fixture, &indices);
    // All 15625 in every column of the table the repository ships.
    let real = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/nats_tss_200ep_test_acc.csv");
    for column in ["cifar10", "cifar100", "imagenet16_120"] {
        let truth = GroundTruth::read(&real, column).unwrap();
        assert_eq!(truth.len(), 15625);
        check(&truth, &(0..15625).collect::<Vec<_>>());
    }
}

/// `fear evaluate --json` on the fixtures.
fn evaluate_fixtures(extra: &[&str]) -> Output {
    let f = fixtures();
    let (gt, fear_file, zc) = (f.join("ground_truth.csv"), f.join("fear_noisy.jsonl"), f.join("zero_cost.jsonl"));
    let mut args = vec!["evaluate", fear_file.to_str().unwrap(), zc.to_str().unwrap(), "--ground-truth", gt.to_str().unwrap(), "--dataset", "cifar10"];
    args.extend(extra);
    fear(&args)
}

fn assert_matches(path: &str, got: &Value, want: &Value) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => assert!(close(g.as_f64().unwrap(), w.as_f64().unwrap()), "{path}: {g} vs reference {w}"),
        (Value::Object(_), Value::Object(w)) => {
            for (k, v) in w {
                assert_matches(&format!("{path}.{k}"), &got[k], v);
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: length");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert_matches(&format!("{path}[{i}]"), g, w);
            }
        }
        (g, w) => assert_eq!(g, w, "{path}"),
    }
}

#[test]
fn noisy_example_matches_scipy() {
    let out = evaluate_fixtures(&["--json", "--not-ok", "last"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap()).unwrap();
    let methods = got["methods"].as_array().unwrap();
    let names: Vec<&str> = methods.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fear", "synflow", "snip", "jacob_cov", "vote"]);
    for (name, want) in reference.as_object().unwrap() {
        let m = methods.iter().find(|m| m["name"] == name.as_str()).unwrap();
        assert_matches(name, m, want);
    }
    assert_eq!(got["dataset"], "cifar10");
    // The example is 12-epoch-like: Spearman near 0.87 with 12 lines capped.
    let f = &methods[0];
    assert!((0.83..0.9).contains(&f["spearman"].as_f64().unwrap()) && f["not_ok"] == 12, "{f}");
}

#[test]
fn table_says_how_many_are_not_ok_and_plots_are_written() {
    // A folder that does not exist yet: `fear evaluate --plots` makes it.
    let dir = common::test_dir("eval-plots").join("plots");
    let out = evaluate_fixtures(&["--not-ok", "last", "--plots", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let fear_row = table.lines().find(|l| l.starts_with("fear ")).unwrap();
    let cells: Vec<&str> = fear_row.split_whitespace().collect();
    assert_eq!((cells[1], cells[2]), ("300", "12"), "n and not ok: {fear_row}");
    assert!(table.contains("not ok") && table.contains("Common ratio") && table.contains("100%"), "{table}");
    let mut names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut want: Vec<String> = BIN_PERCENTS.iter().map(|p| format!("bins-top{p}.svg")).collect();
    want.extend(["scores-fear.svg", "scores-jacob-cov.svg", "scores-snip.svg", "scores-synflow.svg", "time-to-threshold-fear.svg"].map(String::from));
    want.sort();
    assert_eq!(names, want);
    let svg = std::fs::read_to_string(dir.join("bins-top10.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for text in [
        "Top 10% of architectures by ground truth (cifar10, 30 architectures)",
        "Mean time vs Spearman",
        "Mean time vs common ratio",
        "FEAR",
        "zero-cost proxies",
        "jacob_cov",
    ] {
        assert!(svg.contains(text), "bins-top10.svg lacks {text:?}");
    }
    let ttt = std::fs::read_to_string(dir.join("time-to-threshold-fear.svg")).unwrap();
    assert!(ttt.contains("Time to threshold vs final accuracy") && ttt.contains("did not: capped") && ttt.matches("<circle").count() >= 300);
}

/// `--not-ok drop` (the default, the paper's protocol) is `--not-ok last` on the file without its
/// non-ok lines: they leave every metric and the mean time, and are counted per status.
#[test]
fn not_ok_lines_are_dropped_by_default_and_counted() {
    let f = fixtures();
    let dir = common::test_dir("eval-not-ok-drop");
    let kept: String =
        std::fs::read_to_string(f.join("fear_noisy.jsonl")).unwrap().lines().filter(|l| l.contains("\"status\": \"ok\"")).map(|l| format!("{l}\n")).collect();
    let ok_only = dir.join("fear_ok_only.jsonl");
    std::fs::write(&ok_only, kept).unwrap();
    let gt = f.join("ground_truth.csv");
    let json = |file: &Path, extra: &[&str]| -> Value {
        let mut args = vec!["evaluate", file.to_str().unwrap(), "--ground-truth", gt.to_str().unwrap(), "--dataset", "cifar10", "--json"];
        args.extend(extra);
        let out = fear(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["methods"][0].clone()
    };
    let dropped = json(&f.join("fear_noisy.jsonl"), &[]);
    assert_eq!((dropped["n"].as_u64(), dropped["not_ok"].as_u64()), (Some(288), Some(0)), "{dropped}");
    assert_eq!(dropped["dropped"], serde_json::json!({"capped": 12}));
    assert_eq!(json(&f.join("fear_noisy.jsonl"), &["--not-ok", "drop"]), dropped);
    let want = json(&ok_only, &["--not-ok", "last"]);
    for key in ["spearman", "kendall", "pairwise_accuracy", "mean_time_s", "top_k", "bins"] {
        assert_matches(key, &dropped[key], &want[key]);
    }
    // `last` keeps them, ranked last, and their time in the mean.
    let last = json(&f.join("fear_noisy.jsonl"), &["--not-ok", "last"]);
    assert_eq!((last["n"].as_u64(), last["not_ok"].as_u64()), (Some(300), Some(12)));
    assert_ne!(last["mean_time_s"], dropped["mean_time_s"]);
    // The table says what was left out.
    let out = fear(&["evaluate", f.join("fear_noisy.jsonl").to_str().unwrap(), "--ground-truth", gt.to_str().unwrap(), "--dataset", "cifar10"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("dropped (--not-ok drop): fear: 12 capped"), "{table}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let f = fixtures();
    let gt = f.join("ground_truth.csv");
    let dir = common::test_dir("eval-errors");
    let run = |file: &Path, dataset: &str| fear(&["evaluate", file.to_str().unwrap(), "--ground-truth", gt.to_str().unwrap(), "--dataset", dataset]);
    let err = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    let out = run(&dir.join("missing.jsonl"), "cifar10");
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("no such results file"));
    let out = run(&f.join("fear_noisy.jsonl"), "cifar1000");
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));

    let twice = dir.join("twice.jsonl");
    std::fs::write(&twice, "{\"index\":6111,\"score\":0.5,\"stage1_s\":1}\n{\"index\":6111,\"score\":0.6,\"stage1_s\":1}\n").unwrap();
    let out = run(&twice, "cifar10");
    assert!(!out.status.success() && err(&out).contains("appears twice") && err(&out).contains("fear merge"), "{}", err(&out));

    let unknown = dir.join("unknown.jsonl");
    std::fs::write(&unknown, "{\"index\":0,\"score\":0.5,\"stage1_s\":1}\n").unwrap();
    let out = run(&unknown, "cifar10");
    assert!(!out.status.success() && err(&out).contains("architecture 0 has no cifar10 ground truth"), "{}", err(&out));
    assert_eq!(err(&out).trim().lines().count(), 1, "one line: {}", err(&out));

    // Results written on CIFAR-100 against the CIFAR-10 column: a warning, not an error.
    let other = dir.join("other.jsonl");
    std::fs::write(&other, "{\"index\":6111,\"score\":0.5,\"stage1_s\":1,\"dataset\":\"cifar100\"}\n").unwrap();
    let out = run(&other, "cifar10");
    assert!(out.status.success() && err(&out).contains("written on cifar100"), "{}", err(&out));
}

/// A results line of `fear rank` (the demo's data and network) for `index`.
fn demo_line(index: usize, score: f64) -> String {
    let arch = fear::space::Arch::from_index(index).unwrap();
    format!(
        "{{\"index\":{index},\"arch\":\"{arch}\",\"status\":\"ok\",\"score\":{score},\"stage1_s\":1.0,\"reached_threshold\":true,\"time_s\":2.0,\
         \"threshold\":0.15,\"dataset\":\"synthetic-cifar10\",\"channels\":8,\"cells_per_stage\":2}}\n"
    )
}

#[test]
fn evaluate_uses_the_built_in_ground_truth_and_warns_on_mismatches() {
    let dir = common::test_dir("eval-newcomer");
    let demo = dir.join("demo.jsonl");
    std::fs::write(&demo, [1, 6111, 123, 15624].iter().enumerate().map(|(i, &a)| demo_line(a, 0.5 - i as f64 / 10.0)).collect::<String>()).unwrap();
    // A zero-cost file over three of those and one more.
    let zc = dir.join("zc.jsonl");
    let zc_line = |i: usize, s: f64| format!("{{\"index\":{i},\"status\":\"ok\",\"synflow\":{s},\"synflow_time_s\":0.1}}\n");
    std::fs::write(&zc, [zc_line(1, 3.0), zc_line(6111, 4.0), zc_line(123, 1.0), zc_line(9930, 5.0)].concat()).unwrap();
    let (d, z) = (demo.to_str().unwrap(), zc.to_str().unwrap());

    let out = fear(&["evaluate", d, z, "--dataset", "cifar10"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("ground truth: built-in NATS-Bench table"), "{stdout}");
    for warning in ["synthetic-cifar10, which NATS-Bench has no ground truth for", "network C=8, N=2", "cover different architectures (fear 4, synflow 4)"] {
        assert!(stderr.contains(warning), "no warning {warning:?}: {stderr}");
    }
    assert!(stdout.contains("Over the 3 architectures every method holds"), "{stdout}");

    let out = fear(&["evaluate", d, z, "--dataset", "cifar10", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["common"]["n"], 3);
    assert!(v["common"]["methods"].as_array().unwrap().iter().all(|m| m["n"] == 3), "{}", v["common"]);
    assert_eq!(v["methods"][1]["n"], 4);
    // The same set in every file: no common-set report.
    let out = fear(&["evaluate", d, "--dataset", "cifar10", "--json"]);
    assert!(serde_json::from_slice::<Value>(&out.stdout).unwrap().get("common").is_none());

    // --plots onto a file names the problem; empty bins say so; counts tick at whole numbers.
    let taken = dir.join("taken.svg");
    std::fs::write(&taken, "x").unwrap();
    let out = fear(&["evaluate", d, "--dataset", "cifar10", "--plots", taken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a file is there"), "{}", String::from_utf8_lossy(&out.stderr));
    let plots = dir.join("plots");
    let out = fear(&["evaluate", d, "--dataset", "cifar10", "--plots", plots.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let top10 = std::fs::read_to_string(plots.join("bins-top10.svg")).unwrap();
    assert!(top10.contains(">no data<") && !top10.contains("Spearman's rho with ground truth"), "an empty bin drew axes");
    let hist = std::fs::read_to_string(plots.join("scores-fear.svg")).unwrap();
    let y_ticks: Vec<&str> =
        hist.lines().filter(|l| l.contains(r#"text-anchor="end""#)).map(|l| l.split('>').nth(1).unwrap().trim_end_matches("</text")).collect();
    assert!(y_ticks.len() >= 2 && y_ticks.iter().all(|t| t.parse::<u64>().is_ok()), "{y_ticks:?}");
}
