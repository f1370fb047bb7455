//! The README shows what the project runs: its Slurm example is the array job CI submits.

#[test]
fn the_readme_slurm_example_is_the_script_ci_submits() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let script = std::fs::read_to_string(root.join("scripts/rank-array.sbatch")).unwrap();
    assert!(readme.contains(&format!("```sh\n{script}```")), "README.md must show scripts/rank-array.sbatch verbatim");
    let ci = std::fs::read_to_string(root.join("scripts/slurm-ci.sh")).unwrap();
    assert!(ci.contains("scripts/rank-array.sbatch\""), "scripts/slurm-ci.sh must submit scripts/rank-array.sbatch");
}
