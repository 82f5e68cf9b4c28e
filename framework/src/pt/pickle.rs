//! A bounded reader of Python pickles, as `torch.save` writes them (protocol 2 by default,
//! `torch/serialization.py` `DEFAULT_PROTOCOL`; the opcodes of protocols 0-5 that plain data
//! uses are read too). It builds the object graph without running anything: a `GLOBAL` stays
//! a name, a `REDUCE` stays a call with its arguments, for [`super::archive`] to recognise
//! tensors in.
//!
//! Why not candle's `pickle.rs`: it reads dict-shaped state dicts only, clones a memoised
//! object on every `BINGET` (a file of n bytes can ask for 2^n objects), allocates whatever
//! length a `BINUNICODE` claims, and panics on short tuples (`rebuild_args`'s `remove(3)`).
//! Here every object lives once in an arena and containers hold indices, so memory grows with
//! the number of opcodes read, and every length is checked against the bytes that are left
//! before anything is allocated. A file that lies gets an error naming the opcode and offset.

use std::collections::HashMap;

/// Index of an object in a [`Pickle`]'s arena.
pub type Id = usize;

/// One object of the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in 64 bits (kept as a marker: nothing here needs its value).
    BigInt,
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Key-value pairs in insertion order (also `collections.OrderedDict`).
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    /// `module.name`, unresolved.
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)` (`REDUCE`, `NEWOBJ`, `NEWOBJ_EX`), unevaluated.
    Call {
        callable: Id,
        args: Id,
    },
    /// `object.__setstate__(state)` (`BUILD`).
    Build {
        object: Id,
        state: Id,
    },
    /// A persistent id (`BINPERSID`): in PyTorch files, a storage reference.
    Persistent(Id),
}

/// A parsed pickle: the arena and the object the pickle returns.
#[derive(Debug)]
pub struct Pickle {
    pub nodes: Vec<Node>,
    pub root: Id,
}

impl Pickle {
    pub fn node(&self, id: Id) -> &Node {
        &self.nodes[id]
    }
}

/// Parses `bytes`, which must hold one pickle ending at `STOP`. Errors say what is wrong and at
/// which byte.
pub fn parse(bytes: &[u8]) -> Result<Pickle, String> {
    let mut vm = Vm {
        bytes,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    vm.run()
}

struct Vm<'a> {
    bytes: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    /// Stack lengths at each `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

impl Vm<'_> {
    fn run(&mut self) -> Result<Pickle, String> {
        loop {
            let at = self.pos;
            let op = self.take(1)?[0];
            if self
                .step(op)
                .map_err(|e| format!("pickle opcode 0x{op:02x} at byte {at}: {e}"))?
            {
                let root = self.pop()?;
                return Ok(Pickle {
                    nodes: std::mem::take(&mut self.nodes),
                    root,
                });
            }
        }
    }

    /// Executes one opcode; true at `STOP`.
    fn step(&mut self, op: u8) -> Result<bool, String> {
        match op {
            0x80 => {
                let v = self.take(1)?[0];
                if v > 5 {
                    return Err(format!("pickle protocol {v} is newer than 5"));
                }
            }
            0x95 => {
                self.take(8)?; // FRAME: a length hint only
            }
            b'.' => return Ok(true),
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let top = *self.stack.last().ok_or("DUP on an empty stack")?;
                self.stack.push(top);
            }
            b'N' => self.push(Node::None),
            0x88 => self.push(Node::Bool(true)),
            0x89 => self.push(Node::Bool(false)),
            b'K' => {
                let v = self.take(1)?[0];
                self.push(Node::Int(v.into()))
            }
            b'M' => {
                let v = u16::from_le_bytes(self.array()?);
                self.push(Node::Int(v.into()))
            }
            b'J' => {
                let v = i32::from_le_bytes(self.array()?);
                self.push(Node::Int(v.into()))
            }
            0x8a => {
                let n = self.take(1)?[0] as usize;
                self.long(n)?
            }
            0x8b => {
                let n = u32::from_le_bytes(self.array()?) as usize;
                self.long(n)?
            }
            b'G' => {
                let v = f64::from_be_bytes(self.array()?);
                self.push(Node::Float(v))
            }
            b'I' | b'L' => {
                let line = self.line()?;
                let text = line.trim_end_matches('L');
                let node = match text {
                    "00" => Node::Bool(false),
                    "01" => Node::Bool(true),
                    _ => text.parse::<i64>().map(Node::Int).unwrap_or(Node::BigInt),
                };
                self.push(node)
            }
            b'F' => {
                let line = self.line()?;
                let v = line
                    .parse::<f64>()
                    .map_err(|_| format!("FLOAT '{line}' is not a number"))?;
                self.push(Node::Float(v))
            }
            b'X' => {
                let n = u32::from_le_bytes(self.array()?) as usize;
                self.string(n)?
            }
            0x8c => {
                let n = self.take(1)?[0] as usize;
                self.string(n)?
            }
            0x8d => {
                let n = self.len8()?;
                self.string(n)?
            }
            b'V' => {
                let line = self.line()?;
                self.push(Node::Str(line))
            }
            b'S' => {
                let line = self.line()?;
                self.push(Node::Str(line.trim_matches(|c| c == '\'' || c == '"').to_string()))
            }
            b'T' | b'B' => {
                let n = u32::from_le_bytes(self.array()?) as usize;
                self.bytes_node(n, op == b'T')?
            }
            b'U' | b'C' => {
                let n = self.take(1)?[0] as usize;
                self.bytes_node(n, op == b'U')?
            }
            0x8e | 0x96 => {
                let n = self.len8()?;
                self.bytes_node(n, false)?
            }
            b')' => self.push(Node::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let items = self.pop_n(n)?;
                self.push(Node::Tuple(items))
            }
            b']' => self.push(Node::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Node::List(items))
            }
            b'a' => {
                let v = self.pop()?;
                self.extend_list(vec![v])?
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend_list(items)?
            }
            b'}' => self.push(Node::Dict(Vec::new())),
            b'd' => {
                let items = self.pop_mark()?;
                let pairs = pairs(items)?;
                self.push(Node::Dict(pairs))
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.extend_dict(vec![(k, v)])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.extend_dict(pairs(items)?)?
            }
            0x8f => self.push(Node::Set(Vec::new())),
            0x90 => {
                let items = self.pop_mark()?;
                let top = self.top()?;
                match &mut self.nodes[top] {
                    Node::Set(s) => s.extend(items),
                    other => return Err(format!("ADDITEMS on {}", kind(other))),
                }
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push(Node::Set(items))
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.push(Node::Global { module, name })
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (&self.nodes[module], &self.nodes[name]) {
                    (Node::Str(m), Node::Str(n)) => {
                        let node = Node::Global {
                            module: m.clone(),
                            name: n.clone(),
                        };
                        self.push(node)
                    }
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.call(callable, args)
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let callable = self.pop()?;
                self.call(callable, args)
            }
            b'b' => {
                let state = self.pop()?;
                let object = self.top()?;
                let moved = std::mem::replace(&mut self.nodes[object], Node::None);
                let inner = self.nodes.len();
                self.nodes.push(moved);
                self.nodes[object] = Node::Build { object: inner, state };
            }
            b'Q' => {
                let pid = self.pop()?;
                self.push(Node::Persistent(pid))
            }
            b'P' => {
                let line = self.line()?;
                let pid = self.new_node(Node::Str(line));
                self.push(Node::Persistent(pid))
            }
            b'q' => {
                let k = self.take(1)?[0];
                self.memo_put(k.into())?
            }
            b'r' => {
                let k = u32::from_le_bytes(self.array()?);
                self.memo_put(k.into())?
            }
            b'p' => {
                let line = self.line()?;
                let k = line.parse::<u64>().map_err(|_| format!("PUT index '{line}'"))?;
                self.memo_put(k)?
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?
            }
            b'h' => {
                let k = self.take(1)?[0];
                self.memo_get(k.into())?
            }
            b'j' => {
                let k = u32::from_le_bytes(self.array()?);
                self.memo_get(k.into())?
            }
            b'g' => {
                let line = self.line()?;
                let k = line.parse::<u64>().map_err(|_| format!("GET index '{line}'"))?;
                self.memo_get(k)?
            }
            0x82..=0x84 => return Err("extension registry codes (EXT1/2/4) are not used by torch.save".into()),
            0x97 => return Err("out-of-band buffers (NEXT_BUFFER) are not used by torch.save".into()),
            0x98 => {}
            other => return Err(format!("unknown opcode 0x{other:02x}")),
        }
        Ok(false)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "the pickle is truncated: {n} bytes wanted, {} left",
                    self.bytes.len() - self.pos
                )
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn len8(&mut self) -> Result<usize, String> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| format!("a length of {n} bytes"))
    }

    /// A text argument up to the newline (protocol 0 opcodes, `GLOBAL`).
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("a text argument has no newline")?;
        let text = String::from_utf8_lossy(&rest[..end]).trim_end_matches('\r').to_string();
        self.pos += end + 1;
        Ok(text)
    }

    fn string(&mut self, n: usize) -> Result<(), String> {
        let s = self.take(n)?;
        let text = std::str::from_utf8(s)
            .map_err(|_| "a string is not UTF-8".to_string())?
            .to_string();
        self.push(Node::Str(text));
        Ok(())
    }

    /// Bytes; `legacy_str` for protocol-2 `BINSTRING`s, which Python 3 reads as text.
    fn bytes_node(&mut self, n: usize, legacy_str: bool) -> Result<(), String> {
        let s = self.take(n)?.to_vec();
        let node = if legacy_str {
            Node::Str(String::from_utf8_lossy(&s).into_owned())
        } else {
            Node::Bytes(s)
        };
        self.push(node);
        Ok(())
    }

    fn long(&mut self, n: usize) -> Result<(), String> {
        let b = self.take(n)?;
        let node = if n == 0 {
            Node::Int(0)
        } else if n <= 8 {
            let negative = b[n - 1] & 0x80 != 0;
            let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
            buf[..n].copy_from_slice(b);
            Node::Int(i64::from_le_bytes(buf))
        } else {
            Node::BigInt
        };
        self.push(node);
        Ok(())
    }

    fn new_node(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn push(&mut self, node: Node) {
        let id = self.new_node(node);
        self.stack.push(id);
    }

    fn pop(&mut self) -> Result<Id, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("an object was taken from below a MARK".into());
        }
        self.stack.pop().ok_or_else(|| "the stack is empty".to_string())
    }

    fn top(&self) -> Result<Id, String> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "the stack is empty".to_string())
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Id>, String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            return Err(format!("{n} objects wanted, fewer on the stack"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, String> {
        let m = self.marks.pop().ok_or("no MARK to pop to")?;
        Ok(self.stack.split_off(m))
    }

    fn extend_list(&mut self, items: Vec<Id>) -> Result<(), String> {
        let top = self.top()?;
        match &mut self.nodes[top] {
            Node::List(v) => v.extend(items),
            other => return Err(format!("APPEND on {}", kind(other))),
        }
        Ok(())
    }

    fn extend_dict(&mut self, items: Vec<(Id, Id)>) -> Result<(), String> {
        let top = self.top()?;
        match &mut self.nodes[top] {
            Node::Dict(v) => v.extend(items),
            other => return Err(format!("SETITEM on {}", kind(other))),
        }
        Ok(())
    }

    /// `collections.OrderedDict()` becomes a dict at once, so that the `SETITEMS` that follow
    /// fill it (torch.save writes every OrderedDict this way); other calls stay unevaluated.
    fn call(&mut self, callable: Id, args: Id) {
        let ordered_dict = matches!(&self.nodes[callable],
            Node::Global { module, name } if module == "collections" && name == "OrderedDict");
        let empty_args = matches!(&self.nodes[args], Node::Tuple(a) if a.is_empty());
        if ordered_dict && empty_args {
            self.push(Node::Dict(Vec::new()))
        } else {
            self.push(Node::Call { callable, args })
        }
    }

    fn memo_put(&mut self, k: u64) -> Result<(), String> {
        let top = self.top()?;
        self.memo.insert(k, top);
        Ok(())
    }

    fn memo_get(&mut self, k: u64) -> Result<(), String> {
        let id = *self
            .memo
            .get(&k)
            .ok_or_else(|| format!("memo entry {k} was never stored"))?;
        self.stack.push(id);
        Ok(())
    }
}

fn pairs(items: Vec<Id>) -> Result<Vec<(Id, Id)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err("a dict needs key-value pairs, found an odd number of objects".into());
    }
    Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// A short name of what a node is, for messages.
pub fn kind(node: &Node) -> &'static str {
    match node {
        Node::None => "None",
        Node::Bool(_) => "a bool",
        Node::Int(_) | Node::BigInt => "an int",
        Node::Float(_) => "a float",
        Node::Str(_) => "a string",
        Node::Bytes(_) => "bytes",
        Node::Tuple(_) => "a tuple",
        Node::List(_) => "a list",
        Node::Dict(_) => "a dict",
        Node::Set(_) => "a set",
        Node::Global { .. } => "a global name",
        Node::Call { .. } => "an object",
        Node::Build { .. } => "an object with state",
        Node::Persistent(_) => "a persistent id",
    }
}
