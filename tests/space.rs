//! The NATS-Bench topology space: index order, string form, parsing, and architecture lists.

use std::collections::HashSet;
use std::path::PathBuf;

use fear::space::{parse_arch, parse_arch_list, Arch, ArchError, ArchListError, Op, EDGES, NUM_ARCHS};

/// SPEC section 1 test vectors.
const VECTORS: [(usize, &str); 5] = [
    (0, "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"),
    (1, "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"),
    (9, "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"),
    (123, "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"),
    (15624, "|nor_conv_1x1~0|+|none~0|nor_conv_1x1~1|+|none~0|nor_conv_1x1~1|nor_conv_1x1~2|"),
];

const GOOD: &str = VECTORS[1].1;

fn arch(i: usize) -> Arch {
    Arch::from_index(i).unwrap()
}

#[test]
fn spec_vectors_both_ways() {
    for (index, s) in VECTORS {
        assert_eq!(arch(index).to_string(), s, "index {index} -> string");
        let parsed: Arch = s.parse().unwrap();
        assert_eq!(parsed.index(), index, "string -> index for {s}");
        assert_eq!(parse_arch(s).unwrap().index(), index);
        assert_eq!(parse_arch(&index.to_string()).unwrap().to_string(), s);
    }
}

#[test]
fn op_and_edge_conventions() {
    let names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
    assert_eq!(names, ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]);
    for (i, op) in Op::ALL.into_iter().enumerate() {
        assert_eq!(op.index(), i);
        assert_eq!(Op::from_index(i), Some(op));
        assert_eq!(Op::from_name(op.name()), Some(op));
        assert_eq!(op.to_string(), op.name());
    }
    assert_eq!(Op::from_index(5), None);
    assert_eq!(Op::from_name("conv_3x3"), None);
    assert_eq!(EDGES, [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]);
    assert_eq!(NUM_ARCHS, 15625);
    // Arch 9: |avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|
    let a = arch(9);
    assert_eq!(a.ops, [Op::AvgPool3x3, Op::None, Op::None, Op::SkipConnect, Op::None, Op::NorConv3x3]);
    assert_eq!(a.op(3, 2), Some(Op::NorConv3x3));
    assert_eq!(a.op(1, 0), Some(Op::AvgPool3x3));
    assert_eq!(a.op(1, 2), None);
}

#[test]
fn index_table_is_a_permutation_and_round_trips() {
    let mut seen = HashSet::with_capacity(NUM_ARCHS);
    for i in 0..NUM_ARCHS {
        let a = arch(i);
        assert!(seen.insert(a), "index {i} repeats a cell");
        assert_eq!(a.index(), i);
        let s = a.to_string();
        let back: Arch = s.parse().unwrap_or_else(|e| panic!("index {i}: {e}"));
        assert_eq!(back, a);
        assert_eq!(back.index(), i);
    }
    assert_eq!(seen.len(), NUM_ARCHS);
    // Every op combination is some index.
    let all: Vec<Arch> = Arch::all().collect();
    assert_eq!(all.len(), NUM_ARCHS);
    assert!(all.iter().enumerate().all(|(i, a)| a.index() == i));
    assert_eq!(Arch { ops: [Op::None; 6] }.to_string(), "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
}

#[test]
fn from_index_out_of_range() {
    let err = Arch::from_index(NUM_ARCHS).unwrap_err();
    assert_eq!(err, ArchError::IndexOutOfRange { input: "15625".into() });
    let msg = err.to_string();
    assert!(msg.contains("15625") && msg.contains("0..=15624"), "{msg}");
}

#[test]
fn disconnected_count_is_341() {
    let disconnected = Arch::all().filter(|a| !a.is_connected()).count();
    assert_eq!(disconnected, 341);
    assert!(!Arch { ops: [Op::None; 6] }.is_connected());
    // Only the 0->1 and 2->3 edges: no path, since 1->2 is missing.
    let a = Arch { ops: [Op::SkipConnect, Op::None, Op::None, Op::None, Op::None, Op::NorConv3x3] };
    assert!(!a.is_connected());
    // 0->1->3.
    let b = Arch { ops: [Op::NorConv1x1, Op::None, Op::None, Op::None, Op::AvgPool3x3, Op::None] };
    assert!(b.is_connected());
    assert!(arch(9).is_connected());
}

#[test]
fn isomorphism_classes_number_6466() {
    let keys: HashSet<String> = Arch::all().map(|a| a.isomorphism_key()).collect();
    assert_eq!(keys.len(), 6466);
    // conv3(x) computed at node 1 or at node 2: the same function, different cells.
    let p: Arch = "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|".parse().unwrap();
    let q: Arch = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|".parse().unwrap();
    assert_ne!(p, q);
    assert_eq!(p.isomorphism_key(), q.isomorphism_key());
    assert_ne!(p.isomorphism_key(), arch(0).isomorphism_key());
    assert_eq!(Arch { ops: [Op::None; 6] }.isomorphism_key(), "#+#+#");
}

/// Asserts that `s` is rejected with a message containing every one of `needles`.
fn rejects(s: &str, needles: &[&str]) {
    let err = s.parse::<Arch>().expect_err(s);
    assert!(matches!(err, ArchError::Malformed { .. }), "{s}: {err:?}");
    let msg = err.to_string();
    assert!(msg.contains(s), "message should quote the input: {msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    for n in needles {
        assert!(msg.contains(n), "message for {s:?} should mention {n:?}: {msg}");
    }
}

#[test]
fn malformed_strings_are_explained() {
    rejects("", &["empty"]);
    // Unknown op: lists the valid ones.
    rejects("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", &["unknown op `conv_3x3`", "none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"]);
    // Wrong number of nodes.
    rejects("|none~0|+|none~0|none~1|", &["expected 3 nodes", "found 2"]);
    rejects("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", &["expected 3 nodes", "found 4"]);
    // Wrong number of inputs at a node.
    rejects("|none~0|+|none~0|+|none~0|none~1|none~2|", &["node 2", "1 input", "expected 2"]);
    rejects("|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", &["node 1", "2 input", "expected 1"]);
    // Wrong source index.
    rejects("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", &["node 2", "must read node 0", "`1`"]);
    rejects("|none~0|+|none~0|none~1|+|none~0|none~1|none~7|", &["node 3", "`7`"]);
    rejects("|none~0|+|none~0|none~x|+|none~0|none~1|none~2|", &["`x`"]);
    // Missing '~'.
    rejects("|none|+|none~0|none~1|+|none~0|none~1|none~2|", &["`none`", "op~source"]);
    // Missing pipes.
    rejects("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", &["node 1", "must start with '|'"]);
    rejects("|none~0+|none~0|none~1|+|none~0|none~1|none~2|", &["node 1", "`|none~0`", "must end with '|'"]);
    rejects("|none~0|+|none~0none~1|+|none~0|none~1|none~2|", &["node 2", "1 input"]);
    // Trailing garbage.
    rejects("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|xyz", &["unexpected text `xyz`", "node 3"]);
    // Whitespace is not part of the string form (parse_arch trims it).
    rejects(&format!(" {GOOD}"), &["must start with '|'"]);
    assert_eq!(parse_arch(&format!("  {GOOD}\n")).unwrap().index(), 1);
}

#[test]
fn parse_arch_accepts_indices_and_strings() {
    assert_eq!(parse_arch("0").unwrap(), arch(0));
    assert_eq!(parse_arch(" 15624 ").unwrap(), arch(15624));
    assert_eq!(parse_arch(GOOD).unwrap(), arch(1));
    for bad in ["15625", "-1", "99999999999999999999999"] {
        let err = parse_arch(bad).unwrap_err();
        assert_eq!(err, ArchError::IndexOutOfRange { input: bad.into() });
        let msg = err.to_string();
        assert!(msg.contains(bad) && msg.contains("0..=15624"), "{msg}");
    }
    let msg = parse_arch("resnet").unwrap_err().to_string();
    assert!(msg.contains("\"resnet\"") && msg.contains("neither an index"), "{msg}");
    let msg = parse_arch("12a").unwrap_err().to_string();
    assert!(msg.contains("\"12a\""), "{msg}");
}

// ---- lists ----

fn list_err(spec: &str) -> String {
    let err = parse_arch_list(spec, 0).expect_err(spec);
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

#[test]
fn list_all() {
    let all = parse_arch_list("all", 7).unwrap();
    assert_eq!(all.len(), NUM_ARCHS);
    assert!(all.iter().enumerate().all(|(i, a)| a.index() == i));
}

#[test]
fn list_sample_is_deterministic_distinct_and_seeded() {
    let a = parse_arch_list("sample:1000", 42).unwrap();
    let b = parse_arch_list("sample:1000", 42).unwrap();
    let c = parse_arch_list("sample:1000", 43).unwrap();
    assert_eq!(a.len(), 1000);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), 1000);
    // Not simply the first indices.
    assert!(a.iter().any(|x| x.index() >= 1000));
    let full = parse_arch_list("sample:15625", 1).unwrap();
    assert_eq!(full.iter().map(|x| x.index()).collect::<HashSet<_>>().len(), NUM_ARCHS);
    for bad in ["sample:0", "sample:15626", "sample:", "sample:ten", "sample:-3"] {
        let msg = list_err(bad);
        assert!(msg.contains(bad) && msg.contains("1..=15625"), "{msg}");
    }
}

#[test]
fn list_comma_separated() {
    let list = parse_arch_list(&format!("123, 0,{},15624", VECTORS[2].1), 0).unwrap();
    let idx: Vec<usize> = list.iter().map(|a| a.index()).collect();
    assert_eq!(idx, [123, 0, 9, 15624]);
    assert_eq!(parse_arch_list("5", 0).unwrap(), vec![arch(5)]);

    let msg = list_err(&format!("1,2,{GOOD}"));
    assert!(matches!(parse_arch_list(&format!("1,2,{GOOD}"), 0), Err(ArchListError::Duplicate { .. })));
    assert!(msg.contains("architecture 1 ") && msg.contains("entry 1") && msg.contains("entry 3"), "{msg}");
    let msg = list_err("3,4,3");
    assert!(msg.contains("architecture 3 ") && msg.contains("appears twice"), "{msg}");

    let msg = list_err("1,20000");
    assert!(msg.contains("entry 2") && msg.contains("20000") && msg.contains("0..=15624"), "{msg}");
    let msg = list_err("1,|bogus~0|");
    assert!(msg.contains("entry 2") && msg.contains("bogus"), "{msg}");
    let msg = list_err("1,,2");
    assert!(msg.contains("empty entry 2"), "{msg}");
    let msg = list_err("");
    assert!(msg.contains("no architecture"), "{msg}");
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("fear-space-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn list_file() {
    let f = TempFile::new("good.txt", &format!("# archs to try\n\n6111\n  {}  # the paper's best\n\t\n13714 # also 94.37\n", VECTORS[3].1));
    let list = parse_arch_list(&format!("file:{}", f.0.display()), 0).unwrap();
    let idx: Vec<usize> = list.iter().map(|a| a.index()).collect();
    assert_eq!(idx, [6111, 123, 13714]);

    let f = TempFile::new("dup.txt", "# header\n10\n11\n\n10\n");
    let msg = list_err(&format!("file:{}", f.0.display()));
    assert!(msg.contains("line 2") && msg.contains("line 5") && msg.contains("architecture 10 "), "{msg}");
    assert!(msg.contains(&f.0.display().to_string()), "{msg}");

    let f = TempFile::new("bad.txt", "1\n2\n|none~0|+oops\n");
    let msg = list_err(&format!("file:{}", f.0.display()));
    assert!(msg.contains(&format!("{} line 3", f.0.display())) && msg.contains("oops"), "{msg}");

    let f = TempFile::new("empty.txt", "# nothing here\n\n");
    let msg = list_err(&format!("file:{}", f.0.display()));
    assert!(msg.contains("no architecture") && msg.contains("empty.txt"), "{msg}");

    let missing = std::env::temp_dir().join("fear-space-test-definitely-missing.txt");
    let msg = list_err(&format!("file:{}", missing.display()));
    assert!(msg.contains("cannot read") && msg.contains("definitely-missing"), "{msg}");
}

#[test]
fn ground_truth_csv_matches_index_order() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nats_tss_200ep_test_acc.csv");
    if !path.exists() {
        println!("skipping: {} is absent", path.display());
        return;
    }
    // The reader checks each row's arch string against its index.
    for column in fear::eval::GROUND_TRUTH_COLUMNS {
        let truth = fear::eval::GroundTruth::read(&path, column).unwrap();
        assert_eq!(truth.len(), NUM_ARCHS, "{column}");
    }
}
