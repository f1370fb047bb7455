//! The closing summary of `cargo test`: which tests did not run, and how to run them. A test
//! that skipped (no CIFAR-10 archive here) must not pass for one that ran; `cargo test` runs
//! the integration-test binaries in name order, so this one, `zz_skipped`, comes last and lists
//! what the others recorded through `common::record_skip`. A plain `main` (no test harness), so
//! its lines are the last ones printed.

mod common;

fn main() {
    let dir = common::skipped_dir();
    let mut skipped: Vec<(String, String)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    skipped.sort();
    let _ = std::fs::remove_dir_all(&dir);
    if skipped.is_empty() {
        println!("skipped tests: none");
        return;
    }
    println!("\nSKIPPED: {} tests did not run (they are counted as passed above):", skipped.len());
    for (test, why) in &skipped {
        println!("  {test}: {why}");
    }
    println!("To run them, point FEAR_CIFAR10_JPEG at the CIFAR-10 JPEG archive:");
    println!("  FEAR_CIFAR10_JPEG=/path/to/cifar10-jpeg.tar.gz cargo test --release");
}
