//! A NATS-Bench topology cell: six edge operations, its benchmark index and its string form.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use super::error::ArchError;
use super::mt19937::Mt19937;

/// The operation on one edge of a cell, in NATS-Bench's index order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Op {
    None,
    SkipConnect,
    NorConv1x1,
    NorConv3x3,
    AvgPool3x3,
}

impl Op {
    /// All five ops in index order.
    pub const ALL: [Op; 5] = [Op::None, Op::SkipConnect, Op::NorConv1x1, Op::NorConv3x3, Op::AvgPool3x3];

    /// The name used in arch strings, e.g. `nor_conv_3x3`.
    pub fn name(self) -> &'static str {
        match self {
            Op::None => "none",
            Op::SkipConnect => "skip_connect",
            Op::NorConv1x1 => "nor_conv_1x1",
            Op::NorConv3x3 => "nor_conv_3x3",
            Op::AvgPool3x3 => "avg_pool_3x3",
        }
    }

    /// The position in [`Op::ALL`] (0 = `none` .. 4 = `avg_pool_3x3`).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The op at position `i` of [`Op::ALL`].
    pub fn from_index(i: usize) -> Option<Op> {
        Op::ALL.get(i).copied()
    }

    /// The op with this exact name.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The six edges as `(to, from)` node pairs, in the order of [`Arch::ops`] and of arch strings:
/// (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2).
pub const EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

/// Number of cells in the space: 5^6.
pub const NUM_ARCHS: usize = 15625;

/// Nodes in a cell: node 0 is the input, node 3 the output.
const NUM_NODES: usize = 4;

/// The seed NATS-Bench passes to CPython's `random.seed` before shuffling the cells.
const NATS_SHUFFLE_SEED: u64 = 88;

/// One cell of the NATS-Bench topology space: `ops[e]` is the op on edge [`EDGES`]`[e]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Arch {
    pub ops: [Op; 6],
}

/// Index <-> lexicographic code (`sum ops[k] * 5^(5-k)`), both ways.
struct IndexTable {
    code_of_index: Vec<u16>,
    index_of_code: Vec<u16>,
}

fn table() -> &'static IndexTable {
    static TABLE: OnceLock<IndexTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut code_of_index: Vec<u16> = (0..NUM_ARCHS as u16).collect();
        Mt19937::from_python_seed(NATS_SHUFFLE_SEED).shuffle(&mut code_of_index);
        let mut index_of_code = vec![0u16; NUM_ARCHS];
        for (index, &code) in code_of_index.iter().enumerate() {
            index_of_code[code as usize] = index as u16;
        }
        IndexTable { code_of_index, index_of_code }
    })
}

impl Arch {
    /// The cell with NATS-Bench index `index` (0..=15624).
    pub fn from_index(index: usize) -> Result<Arch, ArchError> {
        match table().code_of_index.get(index) {
            Some(&code) => Ok(Arch::from_code(code as usize)),
            None => Err(ArchError::IndexOutOfRange { input: index.to_string() }),
        }
    }

    /// The NATS-Bench index of this cell.
    pub fn index(&self) -> usize {
        table().index_of_code[self.code()] as usize
    }

    /// All 15625 cells in index order.
    pub fn all() -> impl ExactSizeIterator<Item = Arch> {
        table().code_of_index.iter().map(|&code| Arch::from_code(code as usize))
    }

    /// Position in the unshuffled enumeration: the ops as base-5 digits, edge 0 most significant.
    fn code(&self) -> usize {
        self.ops.iter().fold(0, |acc, op| acc * 5 + op.index())
    }

    fn from_code(mut code: usize) -> Arch {
        let mut ops = [Op::None; 6];
        for slot in ops.iter_mut().rev() {
            *slot = Op::ALL[code % 5];
            code /= 5;
        }
        Arch { ops }
    }

    /// The op on the edge from node `from` to node `to` (`from < to`, both in 0..4).
    pub fn op(&self, to: usize, from: usize) -> Option<Op> {
        EDGES.iter().position(|&e| e == (to, from)).map(|e| self.ops[e])
    }

    /// Whether some path of non-`none` edges leads from the input (node 0) to the output (node 3).
    /// A disconnected cell's output is all zeros whatever the input.
    pub fn is_connected(&self) -> bool {
        let mut reached = [false; NUM_NODES];
        reached[0] = true;
        for (e, &(to, from)) in EDGES.iter().enumerate() {
            // EDGES is sorted by `to`, so `reached[from]` is final when it is read.
            if self.ops[e] != Op::None && reached[from] {
                reached[to] = true;
            }
        }
        reached[NUM_NODES - 1]
    }

    /// A key shared by cells that NATS-Bench treats as isomorphic: its
    /// `to_unique_str(consider_zero=True)`. Node 0 is `0`; an edge contributes `#` when its op is
    /// `none` or its input node's key is exactly `#`, its input's key when it is `skip_connect`,
    /// and `(input)@op` otherwise; a node's key is its edges' terms, sorted, joined by `+`. The
    /// 15625 cells have 6466 distinct keys. (Like the original, it does not merge every pair of
    /// cells computing the same function: a node summing two zero terms is `#+#`, not `#`.)
    pub fn isomorphism_key(&self) -> String {
        let mut nodes: Vec<String> = vec!["0".to_string()];
        for to in 1..NUM_NODES {
            let mut terms: Vec<String> = EDGES
                .iter()
                .enumerate()
                .filter(|&(_, &(t, _))| t == to)
                .map(|(e, &(_, from))| {
                    let input = &nodes[from];
                    match self.ops[e] {
                        _ if input == "#" => "#".to_string(),
                        Op::None => "#".to_string(),
                        Op::SkipConnect => input.clone(),
                        op => format!("({input})@{op}"),
                    }
                })
                .collect();
            terms.sort();
            nodes.push(terms.join("+"));
        }
        nodes.pop().expect("four nodes")
    }
}

impl fmt::Display for Arch {
    /// The NATS-Bench string, e.g. `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...~2|`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for to in 1..NUM_NODES {
            if to > 1 {
                f.write_str("+")?;
            }
            f.write_str("|")?;
            for (e, &(t, from)) in EDGES.iter().enumerate() {
                if t == to {
                    write!(f, "{}~{}|", self.ops[e], from)?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Arch {
    type Err = ArchError;

    /// Parses the exact NATS-Bench string form (no surrounding whitespace).
    fn from_str(s: &str) -> Result<Arch, ArchError> {
        parse_arch_string(s).map_err(|reason| ArchError::Malformed { input: s.to_string(), reason })
    }
}

fn op_names() -> String {
    Op::ALL.map(Op::name).join(", ")
}

/// The reason a string is not a valid arch string, or the cell.
fn parse_arch_string(s: &str) -> Result<Arch, String> {
    if s.is_empty() {
        return Err("empty arch string".into());
    }
    let nodes: Vec<&str> = s.split('+').collect();
    if nodes.len() != NUM_NODES - 1 {
        return Err(format!("expected {} nodes separated by '+' (|op~0|+|op~0|op~1|+|op~0|op~1|op~2|), found {}", NUM_NODES - 1, nodes.len()));
    }
    let mut ops = [Op::None; 6];
    let mut edge = 0;
    for (node_idx, node) in nodes.iter().enumerate() {
        let to = node_idx + 1;
        let Some(rest) = node.strip_prefix('|') else {
            return Err(format!("node {to} `{node}` must start with '|'"));
        };
        let Some(last_pipe) = rest.rfind('|') else {
            return Err(format!("node {to} `{node}` must end with '|'"));
        };
        let (inner, trailing) = (&rest[..last_pipe], &rest[last_pipe + 1..]);
        if !trailing.is_empty() {
            return Err(format!("unexpected text `{trailing}` after the last '|' of node {to}"));
        }
        let inputs: Vec<&str> = if inner.is_empty() { Vec::new() } else { inner.split('|').collect() };
        if inputs.len() != to {
            return Err(format!("node {to} `{node}` has {} input(s), expected {to} (one `|op~src|` per earlier node)", inputs.len()));
        }
        for (from, input) in inputs.into_iter().enumerate() {
            let Some((name, src)) = input.split_once('~') else {
                return Err(format!("input `{input}` of node {to} must be `op~source`"));
            };
            let op = Op::from_name(name).ok_or_else(|| format!("unknown op `{name}` in node {to} (valid ops: {})", op_names()))?;
            if src != from.to_string() {
                return Err(format!("input {} of node {to} must read node {from} (`{name}~{from}`), found source `{src}`", from + 1));
            }
            debug_assert_eq!(EDGES[edge], (to, from));
            ops[edge] = op;
            edge += 1;
        }
    }
    Ok(Arch { ops })
}

/// Parses an architecture given as a decimal index (0..=15624) or as an arch string; surrounding
/// whitespace is ignored.
pub fn parse_arch(s: &str) -> Result<Arch, ArchError> {
    let t = s.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match t.parse::<usize>() {
            Ok(i) if i < NUM_ARCHS => Arch::from_index(i),
            _ => Err(ArchError::IndexOutOfRange { input: t.to_string() }),
        };
    }
    if !t.contains('|') {
        return Err(ArchError::Malformed {
            input: t.to_string(),
            reason: format!("neither an index (0..={}) nor an arch string like |nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|", NUM_ARCHS - 1),
        });
    }
    t.parse()
}
