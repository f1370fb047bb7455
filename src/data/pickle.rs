//! A small Python-pickle reader: enough of the pickle virtual machine to read dicts of numpy
//! arrays and lists of ints, as Python 2 (cPickle, protocols 0-2) and Python 3 (protocols 0-5,
//! in-band buffers) write them.
//!
//! Nothing is executed: `GLOBAL` / `STACK_GLOBAL` push a name, `REDUCE` / `NEWOBJ` / `BUILD`
//! record an [`Object`] (callable, arguments, state). Three callables are evaluated because
//! Python 3 writes bytes through them in protocols 0-2: `_codecs.encode(str, 'latin1')` and
//! `bytearray(str, 'latin-1')` become [`Value::Bytes`]. [`NdArray::from_value`] then reads a
//! numpy array from its `_reconstruct` + `BUILD` state (or protocol 5's `_frombuffer`).
//!
//! Python 2 `str` (opcodes `STRING`, `BINSTRING`, `SHORT_BINSTRING`) become [`Value::Bytes`],
//! as `pickle.load(f, encoding='bytes')` would; unicode becomes [`Value::Str`]. [`Value::key_is`]
//! matches a dict key either way.
//!
//! Errors give the byte offset and the opcode; callers add the file name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use anyhow::{anyhow, bail, Result};

/// A decoded pickle value. Clones share (like Python references).
#[derive(Clone, Debug, Default)]
pub enum Value {
    #[default]
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A Python 3 `str` / Python 2 `unicode`.
    Str(Rc<str>),
    /// A Python 3 `bytes` / `bytearray`, or a Python 2 `str`.
    Bytes(Rc<[u8]>),
    List(Rc<RefCell<Vec<Value>>>),
    Tuple(Rc<[Value]>),
    /// Insertion order kept.
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// A `module.name` reference (a class or function), not resolved.
    Global(Rc<str>, Rc<str>),
    /// The result of calling something (`REDUCE`, `NEWOBJ`), with any `BUILD` state.
    Object(Rc<RefCell<Object>>),
}

impl Drop for Value {
    /// Frees nested containers from a worklist instead of by recursion: a pickle of a few
    /// megabytes can nest a million tuples (one opcode byte each), and the derived, recursive
    /// drop would overflow the stack on it.
    fn drop(&mut self) {
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut v) = pending.pop() {
            v.take_children(&mut pending);
            // `v` drops here, holding no children, so its own drop does not go deeper.
        }
    }
}

/// A call recorded, not made.
#[derive(Clone, Debug)]
pub struct Object {
    pub callable: Value,
    pub args: Value,
    pub state: Option<Value>,
}

impl Value {
    /// Moves the children of a container that nothing else shares into `out` (shared ones
    /// stay: their last owner frees them).
    fn take_children(&mut self, out: &mut Vec<Value>) {
        match self {
            Value::List(l) => {
                if let Some(items) = Rc::get_mut(l) {
                    out.append(items.get_mut());
                }
            }
            Value::Tuple(t) => {
                if let Some(items) = Rc::get_mut(t) {
                    out.extend(items.iter_mut().map(std::mem::take));
                }
            }
            Value::Dict(d) => {
                if let Some(pairs) = Rc::get_mut(d) {
                    out.extend(pairs.get_mut().drain(..).flat_map(|(k, v)| [k, v]));
                }
            }
            Value::Object(o) => {
                if let Some(o) = Rc::get_mut(o) {
                    let o = o.get_mut();
                    out.extend([std::mem::take(&mut o.callable), std::mem::take(&mut o.args)].into_iter().chain(o.state.take()));
                }
            }
            _ => {}
        }
    }

    /// Whether this is the string `key` (as `str` or as bytes).
    pub fn key_is(&self, key: &str) -> bool {
        match self {
            Value::Str(s) => &**s == key,
            Value::Bytes(b) => &**b == key.as_bytes(),
            _ => false,
        }
    }

    /// The text of a `str` or (latin-1) bytes.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            Value::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// Items of a tuple or a list (cloned references).
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.to_vec()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }

    /// The value under `key` in a dict (string keys, `str` or bytes).
    pub fn dict_get(&self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(d) => d.borrow().iter().find(|(k, _)| k.key_is(key)).map(|(_, v)| v.clone()),
            _ => None,
        }
    }

    /// The keys of a dict, as text where they are strings.
    pub fn dict_keys(&self) -> Vec<String> {
        match self {
            Value::Dict(d) => d.borrow().iter().map(|(k, _)| k.as_text().unwrap_or_else(|| k.kind())).collect(),
            _ => Vec::new(),
        }
    }

    /// Bytes of a bytes value, or of a `str` whose characters are all below 256 (latin-1, as
    /// numpy reads a Python 2 array payload unpickled with `encoding='latin1'`).
    pub fn as_bytes(&self) -> Option<Rc<[u8]>> {
        match self {
            Value::Bytes(b) => Some(b.clone()),
            Value::Str(s) => latin1(s).map(Rc::from),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(b) => format!("bytes[{}]", b.len()),
            Value::List(l) => format!("list[{}]", l.borrow().len()),
            Value::Tuple(t) => format!("tuple[{}]", t.len()),
            Value::Dict(d) => format!("dict[{}]", d.borrow().len()),
            Value::Global(m, n) => format!("{m}.{n}"),
            Value::Object(o) => match &o.borrow().callable {
                Value::Global(m, n) => format!("{m}.{n}(...)"),
                _ => "object".into(),
            },
        }
    }
}

fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c as u32).ok()).collect()
}

/// Parses a whole pickle (up to its `STOP`) and returns the top value.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    let cycle_walk_budget = CYCLE_WALK_PER_BYTE * bytes.len() + CYCLE_WALK_BASE;
    Machine { b: bytes, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), cycle_walk_budget }.run()
}

struct Machine<'a> {
    b: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    /// Values the cycle checks may still visit (see [`refuse_cycle`]).
    cycle_walk_budget: usize,
}

/// The cycle checks' allowance: a few visits per input byte, plus a floor. Array files insert
/// plain values and spend almost none; a pickle that appends one large shared structure again
/// and again would otherwise cost time quadratic in its size.
const CYCLE_WALK_PER_BYTE: usize = 16;
const CYCLE_WALK_BASE: usize = 1 << 20;

fn opname(op: u8) -> String {
    if op.is_ascii_graphic() {
        format!("opcode 0x{op:02x} ('{}')", op as char)
    } else {
        format!("opcode 0x{op:02x}")
    }
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() - self.pos < n {
            bail!("truncated: needs {n} more bytes, {} left", self.b.len() - self.pos);
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len64(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| anyhow!("length {n} too large"))
    }
    /// A protocol-0 text argument: up to the newline, without it.
    fn line(&mut self) -> Result<&'a [u8]> {
        let rest = &self.b[self.pos..];
        let end = rest.iter().position(|&c| c == b'\n').ok_or_else(|| anyhow!("truncated: no newline ending the argument"))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
    fn line_str(&mut self) -> Result<&'a str> {
        let l = self.line()?;
        std::str::from_utf8(l).map_err(|_| anyhow!("argument is not ASCII text"))
    }
    fn pop(&mut self) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            bail!("stack underflow");
        }
        Ok(self.stack.pop().unwrap())
    }
    fn top(&mut self) -> Result<&mut Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            bail!("stack underflow");
        }
        Ok(self.stack.last_mut().unwrap())
    }
    /// The top of the stack, beside the cycle checks' budget (both borrowed at once).
    fn top_and_budget(&mut self) -> Result<(&mut Value, &mut usize)> {
        self.top()?;
        Ok((self.stack.last_mut().unwrap(), &mut self.cycle_walk_budget))
    }
    /// Pops everything above the last MARK, and the mark.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let m = self.marks.pop().ok_or_else(|| anyhow!("no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }
    fn memo_put(&mut self, id: u64) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(id, v);
        Ok(())
    }
    fn memo_get(&mut self, id: u64) -> Result<()> {
        let v = self.memo.get(&id).cloned().ok_or_else(|| anyhow!("memo key {id} was never stored"))?;
        self.stack.push(v);
        Ok(())
    }

    fn run(mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = self.u8().map_err(|_| anyhow!("offset {at}: the pickle ends without a STOP opcode"))?;
            match self.step(op) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => bail!("offset {at}, {}: {e}", opname(op)),
            }
        }
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn step(&mut self, op: u8) -> Result<Option<Value>> {
        match op {
            0x80 => {
                let p = self.u8()?;
                if p > 5 {
                    bail!("pickle protocol {p} is not supported (0..5 are)");
                }
            }
            0x95 => {
                self.u64()?; // FRAME: a length hint only
            }
            b'.' => {
                let v = self.pop()?;
                return Ok(Some(v));
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.push(v);
            }
            // Constants and numbers.
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            b'K' => {
                let v = self.u8()? as i64;
                self.push(Value::Int(v))
            }
            b'M' => {
                let v = self.u16()? as i64;
                self.push(Value::Int(v))
            }
            b'J' => {
                let v = self.u32()? as i32 as i64;
                self.push(Value::Int(v))
            }
            0x8a => {
                let n = self.u8()? as usize;
                let b = self.take(n)?;
                let v = long_le(b)?;
                self.push(Value::Int(v))
            }
            0x8b => {
                let n = self.u32()? as usize;
                let b = self.take(n)?;
                let v = long_le(b)?;
                self.push(Value::Int(v))
            }
            b'I' => {
                let s = self.line_str()?.trim();
                let v = match s {
                    "01" => Value::Bool(true),
                    "00" => Value::Bool(false),
                    _ => Value::Int(s.parse().map_err(|_| anyhow!("bad INT '{s}'"))?),
                };
                self.push(v)
            }
            b'L' => {
                let s = self.line_str()?.trim();
                let s = s.strip_suffix('L').unwrap_or(s);
                let v = s.parse().map_err(|_| anyhow!("LONG '{s}' does not fit in 64 bits"))?;
                self.push(Value::Int(v))
            }
            b'F' => {
                let s = self.line_str()?.trim();
                let v = s.parse().map_err(|_| anyhow!("bad FLOAT '{s}'"))?;
                self.push(Value::Float(v))
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                self.push(Value::Float(v))
            }
            // Strings and bytes.
            b'S' => {
                let l = self.line()?;
                let v = unquote_py_repr(l)?;
                self.push(Value::Bytes(v.into()))
            }
            b'T' => {
                let n = self.u32()? as i32;
                if n < 0 {
                    bail!("negative BINSTRING length {n}");
                }
                let b = self.take(n as usize)?;
                self.push(Value::Bytes(b.into()))
            }
            b'U' | b'C' => {
                let n = self.u8()? as usize;
                let b = self.take(n)?;
                self.push(Value::Bytes(b.into()))
            }
            b'B' => {
                let n = self.u32()? as usize;
                let b = self.take(n)?;
                self.push(Value::Bytes(b.into()))
            }
            0x8e | 0x96 => {
                let n = self.len64()?;
                let b = self.take(n)?;
                self.push(Value::Bytes(b.into()))
            }
            0x98 => {} // READONLY_BUFFER: no-op for in-band buffers
            b'V' => {
                let l = self.line()?;
                let s = raw_unicode_escape(l)?;
                self.push(Value::Str(s.into()))
            }
            b'X' => {
                let n = self.u32()? as usize;
                let s = utf8(self.take(n)?)?;
                self.push(Value::Str(s.into()))
            }
            0x8c => {
                let n = self.u8()? as usize;
                let s = utf8(self.take(n)?)?;
                self.push(Value::Str(s.into()))
            }
            0x8d => {
                let n = self.len64()?;
                let s = utf8(self.take(n)?)?;
                self.push(Value::Str(s.into()))
            }
            // Containers.
            b')' => self.push(Value::Tuple(Rc::from(Vec::new()))),
            b't' => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(items.into()))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Value::Tuple(items.into()))
            }
            b']' => self.push(Value::List(Rc::new(RefCell::new(Vec::new())))),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Value::List(Rc::new(RefCell::new(items))))
            }
            b'}' => self.push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
            b'd' => {
                let items = self.pop_mark()?;
                let d = pairs(items)?;
                self.push(Value::Dict(Rc::new(RefCell::new(d))))
            }
            0x8f => self.push(Value::List(Rc::new(RefCell::new(Vec::new())))), // EMPTY_SET, kept as a list
            0x91 => {
                let items = self.pop_mark()?;
                self.push(Value::List(Rc::new(RefCell::new(items))))
            }
            b'a' => {
                let v = self.pop()?;
                let (list, budget) = self.top_and_budget()?;
                extend(list, vec![v], budget)?
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                let (list, budget) = self.top_and_budget()?;
                extend(list, items, budget)?
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let (dict, budget) = self.top_and_budget()?;
                set_items(dict, vec![(k, v)], budget)?
            }
            b'u' => {
                let items = self.pop_mark()?;
                let kv = pairs(items)?;
                let (dict, budget) = self.top_and_budget()?;
                set_items(dict, kv, budget)?
            }
            // Memo.
            b'p' => {
                let id = self.line_str()?.trim().parse().map_err(|_| anyhow!("bad PUT id"))?;
                self.memo_put(id)?
            }
            b'q' => {
                let id = self.u8()? as u64;
                self.memo_put(id)?
            }
            b'r' => {
                let id = self.u32()? as u64;
                self.memo_put(id)?
            }
            0x94 => {
                let id = self.memo.len() as u64;
                self.memo_put(id)?
            }
            b'g' => {
                let id = self.line_str()?.trim().parse().map_err(|_| anyhow!("bad GET id"))?;
                self.memo_get(id)?
            }
            b'h' => {
                let id = self.u8()? as u64;
                self.memo_get(id)?
            }
            b'j' => {
                let id = self.u32()? as u64;
                self.memo_get(id)?
            }
            // Objects.
            b'c' => {
                let module = self.line_str()?.to_string();
                let name = self.line_str()?.to_string();
                self.push(Value::Global(module.into(), name.into()))
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (&module, &name) {
                    (Value::Str(m), Value::Str(n)) => self.push(Value::Global(m.clone(), n.clone())),
                    (m, n) => bail!("STACK_GLOBAL needs two str, got {} and {}", m.kind(), n.kind()),
                }
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = call(callable, args)?;
                self.push(v)
            }
            0x81 => {
                let args = self.pop()?;
                let cls = self.pop()?;
                self.push(Value::Object(Rc::new(RefCell::new(Object { callable: cls, args, state: None }))))
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                self.push(Value::Object(Rc::new(RefCell::new(Object { callable: cls, args, state: None }))))
            }
            b'b' => {
                let state = self.pop()?;
                let (target, budget) = self.top_and_budget()?;
                refuse_cycle(target, std::iter::once(&state), budget)?;
                match target {
                    Value::Object(o) => o.borrow_mut().state = Some(state),
                    other => bail!("BUILD on a {}, expected an object", other.kind()),
                }
            }
            b'P' | b'Q' => bail!("persistent ids are not supported"),
            b'i' | b'o' => bail!("old-style instances (INST/OBJ) are not supported"),
            0x82..=0x84 => bail!("the extension registry (EXT1/2/4) is not supported"),
            0x97 => bail!("out-of-band buffers (NEXT_BUFFER) are not supported"),
            _ => bail!("unknown opcode"),
        }
        Ok(None)
    }
}

/// Little-endian two's-complement integer (LONG1 / LONG4), up to 64 bits.
fn long_le(b: &[u8]) -> Result<i64> {
    if b.is_empty() {
        return Ok(0);
    }
    if b.len() > 8 {
        // Allow sign-extension bytes beyond 8.
        let sign = if b[7] & 0x80 != 0 { 0xff } else { 0 };
        if b[8..].iter().any(|&x| x != sign) {
            bail!("integer of {} bytes does not fit in 64 bits", b.len());
        }
        return long_le(&b[..8]);
    }
    let mut buf = if b[b.len() - 1] & 0x80 != 0 { [0xffu8; 8] } else { [0u8; 8] };
    buf[..b.len()].copy_from_slice(b);
    Ok(i64::from_le_bytes(buf))
}

fn utf8(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| anyhow!("unicode string is not valid UTF-8"))
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        bail!("odd number of items ({}) for key/value pairs", items.len());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn extend(target: &mut Value, items: Vec<Value>, budget: &mut usize) -> Result<()> {
    refuse_cycle(target, items.iter(), budget)?;
    match target {
        Value::List(l) => {
            l.borrow_mut().extend(items);
            Ok(())
        }
        other => bail!("APPEND(S) to a {}, expected a list", other.kind()),
    }
}

fn set_items(target: &mut Value, kv: Vec<(Value, Value)>, budget: &mut usize) -> Result<()> {
    refuse_cycle(target, kv.iter().flat_map(|(k, v)| [k, v]), budget)?;
    match target {
        Value::Dict(d) => {
            let mut d = d.borrow_mut();
            for (k, v) in kv {
                // Python semantics: a repeated key replaces the value.
                let same = |a: &Value| match (a, &k) {
                    (Value::Str(x), Value::Str(y)) => x == y,
                    (Value::Bytes(x), Value::Bytes(y)) => x == y,
                    (Value::Int(x), Value::Int(y)) => x == y,
                    _ => false,
                };
                if let Some(slot) = d.iter_mut().find(|(old, _)| same(old)) {
                    slot.1 = v;
                } else {
                    d.push((k, v));
                }
            }
            Ok(())
        }
        other => bail!("SETITEM(S) on a {}, expected a dict", other.kind()),
    }
}

/// The address of a container (what a cycle would run through); None for plain values.
fn container_addr(v: &Value) -> Option<*const ()> {
    match v {
        Value::List(l) => Some(Rc::as_ptr(l) as *const ()),
        Value::Dict(d) => Some(Rc::as_ptr(d) as *const ()),
        Value::Object(o) => Some(Rc::as_ptr(o) as *const ()),
        Value::Tuple(t) => Some(Rc::as_ptr(t) as *const Value as *const ()),
        _ => None,
    }
}

/// Refuses to put `items` into `target` when one of them reaches `target`: pickles may build
/// cycles (a list appended to itself), but no array file needs one, and reference-counted
/// values in a cycle would never be freed. Before the insertion the values form no cycle, so
/// this is the only way one can appear. Walks each container once, without recursion, and
/// spends one unit of `budget` per value visited, refusing the pickle when it runs out.
fn refuse_cycle<'v>(target: &Value, items: impl Iterator<Item = &'v Value>, budget: &mut usize) -> Result<()> {
    let Some(target) = container_addr(target) else { return Ok(()) };
    let mut seen = std::collections::HashSet::new();
    let mut todo: Vec<Value> = items.filter(|v| container_addr(v).is_some()).cloned().collect();
    while let Some(v) = todo.pop() {
        *budget =
            budget.checked_sub(1).ok_or_else(|| anyhow!("the pickle inserts shared structures too often to check them for cycles (is it an array file?)"))?;
        let Some(addr) = container_addr(&v) else { continue };
        if addr == target {
            bail!("the pickle puts a container inside itself (cyclic structures are not supported)");
        }
        if !seen.insert(addr) {
            continue;
        }
        match &v {
            Value::List(l) => todo.extend(l.borrow().iter().cloned()),
            Value::Tuple(t) => todo.extend(t.iter().cloned()),
            Value::Dict(d) => todo.extend(d.borrow().iter().flat_map(|(k, x)| [k.clone(), x.clone()])),
            Value::Object(o) => {
                let o = o.borrow();
                todo.extend([o.callable.clone(), o.args.clone()].into_iter().chain(o.state.clone()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `REDUCE`: evaluates the few byte constructors Python 3 uses in protocols 0-2; records any
/// other call as an [`Object`].
fn call(callable: Value, args: Value) -> Result<Value> {
    if let Value::Global(m, n) = &callable {
        let items = args.items().unwrap_or_default();
        let text_arg = |i: usize| {
            items.get(i).and_then(|v| match v {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
        };
        match (&**m, &**n) {
            ("_codecs", "encode") => {
                let enc = text_arg(1).map(|e| e.to_ascii_lowercase());
                if let (Some(s), Some("latin1" | "latin-1" | "iso-8859-1")) = (text_arg(0), enc.as_deref()) {
                    let b = latin1(&s).ok_or_else(|| anyhow!("_codecs.encode: character above 255 in a latin1 string"))?;
                    return Ok(Value::Bytes(b.into()));
                }
            }
            ("__builtin__" | "builtins", "bytearray" | "bytes") => {
                if items.is_empty() {
                    return Ok(Value::Bytes(Rc::from(Vec::new())));
                }
                if let Some(s) = text_arg(0) {
                    let b = latin1(&s).ok_or_else(|| anyhow!("bytearray: character above 255 in a latin-1 string"))?;
                    return Ok(Value::Bytes(b.into()));
                }
                if let Some(Value::Bytes(b)) = items.first() {
                    return Ok(Value::Bytes(b.clone()));
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(Rc::new(RefCell::new(Object { callable, args, state: None }))))
}

/// Decodes a Python 2 `repr()` of a `str` (protocol 0's `STRING` argument): quoted with `'` or
/// `"`, escapes `\\ \' \" \n \r \t \a \b \f \v \xNN \NNN`.
pub fn unquote_py_repr(l: &[u8]) -> Result<Vec<u8>> {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    if l.len() < 2 || !(l[0] == b'\'' || l[0] == b'"') || l[l.len() - 1] != l[0] {
        bail!("STRING argument is not a quoted string");
    }
    let s = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *s.get(i).ok_or_else(|| anyhow!("STRING ends in a backslash"))?;
        i += 1;
        match e {
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\n' => {}
            b'x' => {
                let h = s.get(i..i + 2).ok_or_else(|| anyhow!("truncated \\x escape"))?;
                let h = std::str::from_utf8(h).ok().and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| anyhow!("bad \\x escape"))?;
                out.push(h);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                let mut k = 0;
                while k < 2 && i < s.len() && (b'0'..=b'7').contains(&s[i]) {
                    v = v * 8 + (s[i] - b'0') as u32;
                    i += 1;
                    k += 1;
                }
                out.push((v & 0xff) as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// Decodes protocol 0's `UNICODE` argument (Python's `raw-unicode-escape`: `\uXXXX`,
/// `\UXXXXXXXX`, every other byte a latin-1 character).
pub fn raw_unicode_escape(l: &[u8]) -> Result<String> {
    let mut out = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        let c = l[i];
        if c == b'\\' && i + 1 < l.len() && (l[i + 1] == b'u' || l[i + 1] == b'U') {
            // pickle writes every backslash itself as \u005c, so any `\u` is an escape.
            let n = if l[i + 1] == b'u' { 4 } else { 8 };
            let h = l.get(i + 2..i + 2 + n).ok_or_else(|| anyhow!("truncated \\u escape"))?;
            let v = std::str::from_utf8(h).ok().and_then(|h| u32::from_str_radix(h, 16).ok()).ok_or_else(|| anyhow!("bad \\u escape"))?;
            out.push(char::from_u32(v).ok_or_else(|| anyhow!("bad code point {v:#x}"))?);
            i += 2 + n;
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    Ok(out)
}

/// A numpy array read from a pickle.
#[derive(Clone, Debug)]
pub struct NdArray {
    /// numpy's type string with its byte order, e.g. `|u1`, `<i8`, `<f8`.
    pub dtype: String,
    pub shape: Vec<usize>,
    pub fortran_order: bool,
    /// The raw element bytes (`product(shape) * itemsize`).
    pub data: Rc<[u8]>,
}

fn is_global(v: &Value, module_suffix: &str, name: &str) -> bool {
    matches!(v, Value::Global(m, n) if &**n == name && (m.ends_with(module_suffix)))
}

fn shape_of(v: &Value) -> Result<Vec<usize>> {
    let items = v.items().ok_or_else(|| anyhow!("array shape is a {}, expected a tuple", v.kind()))?;
    items.iter().map(|d| d.as_int().and_then(|d| usize::try_from(d).ok()).ok_or_else(|| anyhow!("array shape entry is a {}", d.kind()))).collect()
}

/// The type string of a pickled `numpy.dtype(...)` object: its first argument (`u1`, `i8`,
/// `f8`, ...) with the byte order of its state (`|`, `<`, `>`), e.g. `|u1` or `<f8`.
fn dtype_of(v: &Value) -> Result<String> {
    let o = match v {
        Value::Object(o) => o.borrow().clone(),
        other => bail!("array dtype is a {}, expected numpy.dtype(...)", other.kind()),
    };
    if !is_global(&o.callable, "numpy", "dtype") {
        bail!("array dtype is {}, expected numpy.dtype(...)", v.kind());
    }
    let args = o.args.items().unwrap_or_default();
    let code = args.first().and_then(|a| a.as_text()).ok_or_else(|| anyhow!("numpy.dtype without a type string"))?;
    let order = o.state.as_ref().and_then(|s| s.items()).and_then(|s| s.get(1).and_then(|x| x.as_text())).unwrap_or_else(|| "|".into());
    let order = if order == "=" { "<".to_string() } else { order };
    if !matches!(order.as_str(), "|" | "<" | ">") {
        bail!("numpy.dtype with byte order {order:?}, expected one of | < > =");
    }
    Ok(format!("{order}{code}"))
}

impl NdArray {
    /// Reads a numpy array: `numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')` with a
    /// `BUILD` state `(version, shape, dtype, is_fortran, raw_bytes)` (protocols 0-4, Python 2
    /// and 3; `numpy._core` in numpy 2), or protocol 5's `_frombuffer(buffer, dtype, shape,
    /// order)` with an in-band buffer.
    pub fn from_value(v: &Value) -> Result<NdArray> {
        let o = match v {
            Value::Object(o) => o.borrow().clone(),
            other => bail!("expected a numpy array, found a {}", other.kind()),
        };
        let arr = if is_global(&o.callable, "multiarray", "_reconstruct") {
            let state = o.state.as_ref().ok_or_else(|| anyhow!("numpy array without a BUILD state"))?;
            let st = state.items().ok_or_else(|| anyhow!("numpy array state is a {}", state.kind()))?;
            // Version 1 states have 5 items; the oldest have 4 (no version).
            let st = match st.len() {
                5 => &st[1..],
                4 => &st[..],
                n => bail!("numpy array state has {n} items, expected 4 or 5"),
            };
            let data = st[3].as_bytes().ok_or_else(|| anyhow!("numpy array payload is a {} (object arrays are not supported)", st[3].kind()))?;
            NdArray { shape: shape_of(&st[0])?, dtype: dtype_of(&st[1])?, fortran_order: matches!(st[2], Value::Bool(true)) || st[2].as_int() == Some(1), data }
        } else if is_global(&o.callable, "numeric", "_frombuffer") {
            let a = o.args.items().unwrap_or_default();
            if a.len() < 3 {
                bail!("_frombuffer with {} arguments", a.len());
            }
            NdArray {
                data: a[0].as_bytes().ok_or_else(|| anyhow!("_frombuffer buffer is a {}", a[0].kind()))?,
                dtype: dtype_of(&a[1])?,
                shape: shape_of(&a[2])?,
                fortran_order: a.get(3).and_then(|x| x.as_text()).as_deref() == Some("F"),
            }
        } else {
            bail!("expected a numpy array, found {}", v.kind());
        };
        let item = arr.itemsize()?;
        let bytes = arr.shape.iter().try_fold(item, |n, &d| n.checked_mul(d));
        if bytes != Some(arr.data.len()) {
            bail!(
                "numpy array of shape {:?} and dtype {} needs {} bytes, the payload has {}",
                arr.shape,
                arr.dtype,
                bytes.map_or("more than 2^64".to_string(), |b| b.to_string()),
                arr.data.len()
            );
        }
        Ok(arr)
    }

    /// Bytes per element, from the dtype string.
    pub fn itemsize(&self) -> Result<usize> {
        let bad = || anyhow!("unsupported numpy dtype {:?}", self.dtype);
        // Checked byte by byte: the dtype comes from the file and may hold any text.
        let code = self.dtype.strip_prefix(['|', '<', '>']).ok_or_else(bad)?;
        if !matches!(code.as_bytes().first(), Some(b'u' | b'i' | b'f' | b'b')) {
            return Err(bad());
        }
        code[1..].parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(bad)
    }

    /// The elements as `i64` for integer (and bool) dtypes, in storage order.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        let item = self.itemsize()?; // first: it checks the dtype's shape, so slicing is safe
        let code = &self.dtype[1..];
        let big = self.dtype.starts_with('>');
        let kind = code.as_bytes()[0];
        if !matches!(kind, b'u' | b'i' | b'b') || !matches!(item, 1 | 2 | 4 | 8) {
            bail!("numpy dtype {} is not an integer type", self.dtype);
        }
        Ok(self
            .data
            .chunks_exact(item)
            .map(|c| {
                let mut b = [0u8; 8];
                if big {
                    for (k, &x) in c.iter().rev().enumerate() {
                        b[k] = x;
                    }
                } else {
                    b[..item].copy_from_slice(c);
                }
                let neg = kind == b'i' && b[item - 1] & 0x80 != 0;
                if neg {
                    for x in &mut b[item..] {
                        *x = 0xff;
                    }
                }
                i64::from_le_bytes(b)
            })
            .collect())
    }
}

/// Reads a list / tuple of ints, or a 1-D integer numpy array, as `i64`.
pub fn int_list(v: &Value) -> Result<Vec<i64>> {
    if let Some(items) = v.items() {
        return items.iter().enumerate().map(|(i, x)| x.as_int().ok_or_else(|| anyhow!("item {i} is a {}, expected an int", x.kind()))).collect();
    }
    NdArray::from_value(v)?.to_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nesting this deep would need hundreds of megabytes of stack to drop recursively.
    const DEEP: usize = 1_000_000;

    /// Parses and drops on a thread with a small stack: an overflow aborts the test binary.
    fn parse_and_drop_on_small_stack(bytes: Vec<u8>) -> Result<Vec<String>> {
        std::thread::Builder::new().stack_size(256 * 1024).spawn(move || parse(&bytes).map(|v| v.dict_keys())).unwrap().join().unwrap()
    }

    #[test]
    fn a_million_nested_tuples_parse_and_drop_without_recursion() {
        let mut p = vec![0x80, 2, b')'];
        p.extend(std::iter::repeat_n(0x85u8, DEEP)); // TUPLE1 wraps the top
        p.push(b'.');
        assert!(parse_and_drop_on_small_stack(p).unwrap().is_empty());
    }

    #[test]
    fn a_million_nested_lists_parse_and_drop_without_recursion() {
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b'(', DEEP)); // one MARK per level
        p.push(b']');
        p.extend(std::iter::repeat_n(b'l', DEEP)); // LIST wraps everything above its mark
        p.push(b'.');
        assert!(parse_and_drop_on_small_stack(p).unwrap().is_empty());
    }

    #[test]
    fn appending_one_large_shared_structure_many_times_is_refused_quickly() {
        // A 100k-deep tuple memoised, then appended 200k times: 10^10 visits unchecked.
        let mut p = vec![0x80, 2, b')'];
        p.extend(std::iter::repeat_n(0x85u8, 100_000));
        p.extend([b'q', 0, b']']); // BINPUT 0, EMPTY_LIST
        for _ in 0..200_000 {
            p.extend([b'h', 0, b'a']); // BINGET 0, APPEND
        }
        p.push(b'.');
        let err = parse_and_drop_on_small_stack(p).unwrap_err().to_string();
        assert!(err.contains("too often to check them for cycles"), "{err}");
    }

    #[test]
    fn a_deeply_nested_dict_key_is_named_by_its_kind() {
        let mut p = vec![0x80, 2, b'}', b')'];
        p.extend(std::iter::repeat_n(0x85u8, DEEP));
        p.extend([b'K', 1, b's', b'.']); // {((...),): 1}
        assert_eq!(parse_and_drop_on_small_stack(p).unwrap(), vec!["tuple[1]".to_string()]);
    }
}
