//! The NATS-Bench topology search space.
//!
//! A cell is a DAG of four nodes with an op on each of its six edges ([`EDGES`], [`Op`]), so
//! 5^6 = 15625 cells ([`NUM_ARCHS`]). [`Arch`] converts between a cell, its NATS-Bench index
//! (the lexicographic enumeration shuffled by CPython's `random.seed(88); random.shuffle`,
//! reproduced with [`mt19937`]) and its string form `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
//! [`parse_arch`] reads one architecture from the user, [`parse_arch_list`] a set of them.

pub mod arch;
pub mod error;
pub mod list;
pub mod mt19937;

pub use arch::{parse_arch, Arch, Op, EDGES, NUM_ARCHS};
pub use error::ArchError;
pub use list::{parse_arch_lines, parse_arch_list, ArchListError};
