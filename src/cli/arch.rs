//! `fear arch`: what an architecture is and what it costs.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::net::{tiny_network, NetConfig};
use crate::space::{Arch, NUM_ARCHS};

#[derive(Args, Debug)]
pub struct ArchArgs {
    /// An index (0..15624) or an arch string such as
    /// `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub arch: Option<String>,
    /// Describe all 15625 architectures, one line each.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// What `fear arch` reports for one architecture (on the default network: C=16, N=5, 10 classes).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ArchInfo {
    pub index: usize,
    pub arch: String,
    /// Trainable parameters (BN affine included, running statistics excluded).
    pub params: usize,
    /// Forward FLOPs per 32x32 image, counted as NATS-Bench counts them.
    pub flops: usize,
    /// Whether any path leads from the cell's input to its output.
    pub connected: bool,
}

pub fn describe(arch: &Arch) -> ArchInfo {
    let graph = tiny_network(arch, &NetConfig::default(), 1);
    ArchInfo { index: arch.index(), arch: arch.to_string(), params: graph.param_len(), flops: graph.flops_per_image(), connected: arch.is_connected() }
}

pub fn run(args: ArchArgs) -> Result<()> {
    let archs: Vec<Arch> = match &args.arch {
        Some(s) => vec![super::parse_arch_arg(s)?],
        None => (0..NUM_ARCHS).map(|i| Arch::from_index(i).expect("index in range")).collect(),
    };
    let mut out = std::io::stdout().lock();
    for arch in &archs {
        let info = describe(arch);
        let written = if args.json {
            writeln!(out, "{}", serde_json::to_string(&info)?)
        } else if args.all {
            writeln!(out, "{:>5}  {:>9}  {:>8.2}M  {}", info.index, info.params, info.flops as f64 / 1e6, info.arch)
        } else {
            writeln!(
                out,
                "index      {}\narch       {}\nparams     {} (10 classes)\nflops      {:.2} M per 32x32 image\nconnected  {}",
                info.index,
                info.arch,
                info.params,
                info.flops as f64 / 1e6,
                if info.connected { "yes" } else { "no (the output ignores the input)" }
            )
        };
        match written {
            // A closed pipe (`fear arch --all | head`) is the reader's choice, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
    Ok(())
}
