//! The closing summary of `cargo test`: which tests did not run, and how to run them. A test
//! that skipped (no CIFAR-10 archive here) must not pass for one that ran; `cargo test` runs
//! the integration-test binaries in name order, so this one, `zz_skipped`, comes last and lists
//! what the others recorded through `common::find_or_skip`. A plain `main` (no test harness),
//! so its lines are the last ones printed.

mod common;

fn main() {
    let dir = common::skipped_dir();
    let skipped = common::read_skipped(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    if skipped.is_empty() {
        println!("skipped tests: none");
        return;
    }
    println!("\nSKIPPED: {} test(s) did not run (counted as passed above):", skipped.len());
    for (test, why) in &skipped {
        println!("  {test}: {why}");
    }
    println!("To run them, point FEAR_CIFAR10_JPEG at the CIFAR-10 JPEG archive:");
    println!("  FEAR_CIFAR10_JPEG=/path/to/cifar10-jpeg.tar.gz cargo test --release");
}
