//! The module structure of `src/`, checked from the code's own `use` lines and paths:
//!
//! 1. Layers point down only (docs/architecture.md §3): a module may use a module of a
//!    lower layer, never one of its own layer or above.
//! 2. No import cycle between files. A child module using its parent's items (`super::`)
//!    is the module tree itself, not a cycle, and is not counted.
//!
//! A failure names the files and the paths that break the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. `main` (the binary) may use everything.
const LAYERS: [(&str, u8); 11] = [
    ("util", 0),
    ("config", 1),
    ("metrics", 1),
    ("http", 2),
    ("protocol", 3),
    ("runtime", 3),
    ("spool", 3),
    ("forward", 4),
    ("distributor", 5),
    ("ring", 5),
    ("gateway", 6),
];

type Module = Vec<String>;

struct File {
    path: PathBuf,
    module: Module,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn load() -> Vec<File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).expect("under src");
            let mut module: Module = rel
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|l| l == "mod") || module == ["lib"] {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read file");
            File { path, module, text }
        })
        .collect()
}

/// The code without comments (line comments and doc comments; block comments are not
/// used in this tree).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into full paths.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::").trim();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = join(prefix, head);
        // Split on commas at depth 0.
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &base, out);
    } else {
        let item = tree.split(" as ").next().unwrap_or("").trim();
        if !item.is_empty() {
            out.push(join(prefix, item));
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}::{b}"),
    }
}

/// Every path a file refers to: its `use` trees and the qualified paths in its code.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let after = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            rest = after;
            continue;
        }
        let end = after.find(';').unwrap_or(after.len());
        expand(&after[..end], "", &mut out);
        rest = &after[end..];
    }
    let bytes = code.as_bytes();
    for root in ["crate::", "super::", "self::", "pyrogate::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(root) {
            let at = from + i;
            from = at + root.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.push(code[at..end].trim_end_matches(':').to_owned());
        }
    }
    out
}

/// The module a path lands in: the longest prefix that is a module of the tree.
fn resolve(path: &str, from: &File, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Module = match segs.first().copied() {
        Some("crate") | Some("pyrogate") => {
            segs.remove(0);
            Vec::new()
        }
        Some("super") | Some("self") => {
            // The module of a file is the module its items live in.
            let mut m = from.module.clone();
            while let Some(s) = segs.first().copied() {
                match s {
                    "super" => {
                        m.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                segs.remove(0);
            }
            m
        }
        _ => {
            // A path relative to the current module (`writer::run` after `mod writer`).
            let mut m = from.module.clone();
            m.push(segs.first()?.to_string());
            if !modules.contains(&m) {
                return None;
            }
            segs.remove(0);
            m
        }
    };
    let mut best = modules.contains(&base).then(|| base.clone());
    for s in segs {
        base.push(s.to_owned());
        if modules.contains(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best
}

fn rank(top: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == top).map(|(_, r)| *r)
}

/// Edges file → file (by module), with the paths that make each.
fn graph(files: &[File]) -> BTreeMap<(Module, Module), BTreeSet<String>> {
    let modules: BTreeSet<Module> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges: BTreeMap<(Module, Module), BTreeSet<String>> = BTreeMap::new();
    for f in files {
        if f.path.ends_with("main.rs") {
            continue; // the binary: it wires everything and may use everything
        }
        for p in paths(&code(&f.text)) {
            let Some(to) = resolve(&p, f, &modules) else {
                continue;
            };
            if to == f.module || to.is_empty() {
                continue;
            }
            // A child using its own ancestors' items is the module tree, not a dependency.
            if to.len() < f.module.len() && f.module.starts_with(&to) {
                continue;
            }
            edges.entry((f.module.clone(), to)).or_default().insert(p);
        }
    }
    edges
}

#[test]
fn layers_point_down_only() {
    let files = load();
    let mut broken = Vec::new();
    for ((from, to), why) in graph(&files) {
        let (Some(a), Some(b)) = (from.first(), to.first()) else {
            continue;
        };
        if a == b {
            continue;
        }
        match (rank(a), rank(b)) {
            (Some(ra), Some(rb)) if ra > rb => {}
            _ => broken.push(format!(
                "{} -> {}: {}",
                from.join("::"),
                to.join("::"),
                why.into_iter().collect::<Vec<_>>().join(", ")
            )),
        }
    }
    assert!(
        broken.is_empty(),
        "imports that do not point down a layer:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_import_cycles() {
    let files = load();
    let edges = graph(&files);
    let mut next: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    // Depth-first search with colours; a grey node reached again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let nodes: Vec<&Module> = files.iter().map(|f| &f.module).collect();
    let mut colour: BTreeMap<&Module, Colour> = nodes.iter().map(|n| (*n, Colour::White)).collect();
    let mut cycles = Vec::new();
    fn visit<'a>(
        n: &'a Module,
        next: &BTreeMap<&'a Module, Vec<&'a Module>>,
        colour: &mut BTreeMap<&'a Module, Colour>,
        stack: &mut Vec<&'a Module>,
        cycles: &mut Vec<String>,
    ) {
        colour.insert(n, Colour::Grey);
        stack.push(n);
        for m in next.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            match colour.get(m).copied().unwrap_or(Colour::White) {
                Colour::White => visit(m, next, colour, stack, cycles),
                Colour::Grey => {
                    let i = stack.iter().position(|s| s == m).unwrap_or(0);
                    let names: Vec<String> = stack[i..].iter().map(|s| s.join("::")).collect();
                    cycles.push(format!("{} -> {}", names.join(" -> "), m.join("::")));
                }
                Colour::Black => {}
            }
        }
        stack.pop();
        colour.insert(n, Colour::Black);
    }
    for n in &nodes {
        if colour.get(n).copied() == Some(Colour::White) {
            visit(n, &next, &mut colour, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The checker itself sees what it must: a grouped `use`, an inline path, `super::`.
#[test]
fn the_checker_reads_paths() {
    let mut out = Vec::new();
    expand(
        "crate::protocol::{labels, push::{self, PushHead}}",
        "",
        &mut out,
    );
    assert_eq!(
        out,
        [
            "crate::protocol::labels",
            "crate::protocol::push::self",
            "crate::protocol::push::PushHead"
        ]
    );
    let p = paths("use super::Core;\nlet x = crate::forward::local::Local::current();\n");
    assert!(p.contains(&"super::Core".to_owned()), "{p:?}");
    assert!(
        p.contains(&"crate::forward::local::Local::current".to_owned()),
        "{p:?}"
    );
    let files = load();
    let edges = graph(&files);
    let m = |s: &str| -> Module { s.split("::").map(str::to_owned).collect() };
    assert!(
        edges.contains_key(&(m("gateway::push"), m("protocol::push"))),
        "the gateway's Push handler uses the Push wire format"
    );
    assert!(edges.contains_key(&(m("forward::delivery"), m("forward::local"))));
}
