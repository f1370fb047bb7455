//! The README shows what the project runs: its Slurm example is the array job CI submits, and
//! every `fear ...` line in its shell blocks is a command `fear` accepts as written.

use clap::Parser;
use fear::cli::Cli;

fn readme() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

#[test]
fn the_readme_slurm_example_is_the_script_ci_submits() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = readme();
    let script = std::fs::read_to_string(root.join("scripts/rank-array.sbatch")).unwrap();
    assert!(readme.contains(&format!("```sh\n{script}```")), "README.md must show scripts/rank-array.sbatch verbatim");
    let ci = std::fs::read_to_string(root.join("scripts/slurm-ci.sh")).unwrap();
    assert!(ci.contains("scripts/rank-array.sbatch\""), "scripts/slurm-ci.sh must submit scripts/rank-array.sbatch");
}

/// Issue 15, difference 5: the authors' random search with shortreg trained at batch 1024 for 50 epochs.
#[test]
fn the_readme_random_search_with_shortreg_uses_the_papers_batch() {
    let readme = readme();
    let example = readme.lines().find(|l| l.starts_with("fear search --method shortreg")).expect("an RS-shortreg example");
    assert!(example.contains("--epochs 50 --batch 1024"), "{example}");
}

/// Issue 15, differences 1-3, 6 and 7: the recipe table, what stage 2 trains for each N, and the
/// stage-2 clipping difference are written down.
#[test]
fn the_readme_states_the_recipes_stage2_cells_and_clipping() {
    let readme = readme();
    for row in [
        "| CIFAR-10, CIFAR-100, `folder:` | FEAR (`rank`) | crop (pad 4) + flip | yes | 16 |",
        "| CIFAR-10, CIFAR-100, `folder:` | shortreg, `search`, zero-cost | crop (pad 4) + flip | yes | none |",
        "| ImageNet16-120 | every method | none | none (`ToTensor` only: byte / 255) | none |",
        "| Synthetic CIFAR-10 | every method | none | the samples' own decoding | none |",
        "| every dataset | every method | crop (pad 4, or 2 on 16x16) + flip | yes | none |",
    ] {
        assert!(readme.contains(row), "README.md lacks the recipe row {row:?}");
    }
    assert!(readme.contains("`--cells-per-stage 1` trains no cell"), "README.md must say what stage 2 trains at N=1");
    assert!(readme.contains("stale stage-1 gradients"), "README.md must document the stage-2 clipping difference");
}

/// The commands of the README's ```sh blocks that start with `fear `, continuation lines joined.
fn fear_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let (mut in_sh, mut pending) = (false, String::new());
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let joined = if pending.is_empty() { line.trim().to_string() } else { format!("{pending} {}", line.trim()) };
        if let Some(head) = joined.strip_suffix('\\') {
            pending = head.trim_end().to_string();
            continue;
        }
        pending.clear();
        if joined.starts_with("fear ") {
            commands.push(joined);
        }
    }
    commands
}

/// A command line split into words as the shell splits it (quotes, `#` comments); only what
/// the README uses.
fn shell_words(command: &str) -> Vec<String> {
    let (mut words, mut word, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&q| q != '\''));
            }
            '"' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&q| q != '"'));
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                assert!(!"|;&<>$`[]".contains(c), "{command:?}: {c:?} is more shell than this test reads; keep README examples plain");
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn every_fear_command_in_the_readme_parses() {
    let commands = fear_commands(&readme());
    assert!(commands.len() >= 20, "found only {} fear commands in README.md", commands.len());
    for command in &commands {
        let words = shell_words(command);
        match Cli::try_parse_from(&words) {
            Err(e) if e.kind() != clap::error::ErrorKind::DisplayHelp => panic!("README.md: `{command}` does not parse:\n{e}"),
            _ => {}
        }
        // What clap cannot see: a real dataset needs --archs (fear search draws its own).
        let has = |flag: &str| words.iter().any(|w| w == flag);
        if has("--dataset") && ["rank", "shortreg", "zero-cost"].contains(&words[1].as_str()) {
            assert!(has("--archs"), "README.md: `{command}` has --dataset but no --archs");
        }
    }
}

#[test]
fn shell_words_split_as_the_shell_does() {
    assert_eq!(shell_words("fear arch '|a~0|' --json   # note"), ["fear", "arch", "|a~0|", "--json"]);
    let readme = "```sh\nfear rank --a 1 \\\n    --b 2\nls\n```\nfear not-in-a-block\n";
    assert_eq!(fear_commands(readme), ["fear rank --a 1 --b 2"]);
}
