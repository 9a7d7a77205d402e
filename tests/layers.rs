//! The architecture, as a test: imports in `src/` point down the layers and never in a
//! circle.
//!
//! It reads every `src/**/*.rs`, collects the paths each file names into the crate (`use
//! crate::…` lines with their `{…}` groups, inline `crate::…` paths, `super::` chains that
//! climb out of a top-level module, and `herald::…` in `main.rs`, which is its own crate),
//! maps each to the top-level module it names, and fails, naming the file and line, when
//! - the top-level modules import each other in a cycle;
//! - the store imports the pages, the API, the engine or the throttle (it is the layer all of
//!   those stand on; a record two of them share lives at the store's level or below);
//! - a module imports a layer above its own (`LAYERS`), or the API and the pages import each
//!   other (what both need lives in the layers below them);
//! - a top-level module is missing from `LAYERS` (a new module says where it stands).
//!
//! No parser crate: a small lexer blanks comments, strings and character literals (so a doc
//! comment that mentions `crate::api` is not an import) and tracks inline `mod x { … }`
//! blocks (so `use super::*` in a test module does not climb too far).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may import its own layer and the layers below it.
const LAYERS: &[(&str, &[&str])] = &[
    // Values and rules with no I/O of their own: units (durations, sizes, rates), parsed
    // input and the address rules (`domain`), time (`clock`), the delivery format (`wire`),
    // the configuration, keys and sealing (`secrets`), and the shutdown token (`lifecycle`).
    // Inside this layer: units → domain → clock → wire → config → secrets; lifecycle alone.
    (
        "values",
        &[
            "units",
            "domain",
            "clock",
            "wire",
            "config",
            "secrets",
            "lifecycle",
        ],
    ),
    // Every durable thing, behind small traits; the only code that knows SQL.
    ("store", &["store"]),
    // The delivery path (dispatcher, board, workers, the claim planner and health policy)
    // and the counters and spans it keeps (`telemetry`: the publish's span too).
    ("engine", &["engine", "metrics", "telemetry"]),
    // The operations the API and the pages share.
    ("service", &["service"]),
    // The HTTP edge: the error envelope and the server's guards (including the one body
    // reader the API and the pages use).
    ("edge", &["error", "server"]),
    // The handlers: the JSON API and the admin and portal pages, side by side.
    ("handlers", &["api", "pages"]),
    // What wires it all: `run` (lib.rs), the CLI's commands (`herald listen`, a client of
    // the API over HTTP, among them), the binary and its process settings (`memory`).
    ("binary", &["lib", "cli", "listen", "main", "memory"]),
];

/// Modules of one layer that must not import each other.
const APART: &[(&str, &str)] = &[("api", "pages")];

/// What the store must never import (module path prefixes).
const STORE_NEVER: &[&str] = &["pages", "api", "engine", "server::throttle"];

/// Imports that break the rules today, each allowed until the change named beside it. An
/// entry no import uses any more fails the test, so it is removed with the import.
/// Imports that may point the wrong way, each with why: none today. An entry nothing
/// needs any more fails the test, so the list only shrinks.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// One path a file names into the crate: `store::model::Endpoint` is
/// `["store", "model", "Endpoint"]`.
#[derive(Debug, Clone)]
struct Import {
    file: String,
    line: usize,
    path: Vec<String>,
}

impl Import {
    fn top(&self) -> &str {
        self.path.first().map(String::as_str).unwrap_or("lib")
    }

    fn starts_with(&self, prefix: &str) -> bool {
        let prefix: Vec<&str> = prefix.split("::").collect();
        self.path.len() >= prefix.len() && self.path.iter().zip(&prefix).all(|(a, b)| a == b)
    }

    fn show(&self) -> String {
        format!(
            "{}:{}: crate::{}",
            self.file,
            self.line,
            self.path.join("::")
        )
    }
}

#[test]
fn imports_point_down_and_never_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = top_level_modules(&root.join("src"));
    let imports = collect(root);
    // The collector must see the tree's real imports, or an empty result would pass.
    assert!(
        imports
            .iter()
            .any(|i| module_of(&i.file) == "engine" && i.top() == "store"),
        "the collector found no engine → store import; it is broken"
    );
    let mut problems = Vec::new();
    problems.extend(unplaced(&modules));
    let (kept, used) = apply_allowed(&imports);
    problems.extend(stale_allowances(&used));
    problems.extend(store_imports(&kept));
    problems.extend(upward(&kept, &modules));
    problems.extend(cycles(&kept, &modules));
    assert!(
        problems.is_empty(),
        "the layers of src/ (tests/layers.rs) are broken:\n\n{}\n\nlayers, bottom first: {}",
        problems.join("\n\n"),
        LAYERS
            .iter()
            .map(|(name, m)| format!("{name} [{}]", m.join(", ")))
            .collect::<Vec<_>>()
            .join(" → ")
    );
}

/// The top-level modules of `src/`: `x.rs` and `x/` are `x`; `lib.rs` and `main.rs` too.
fn top_level_modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .expect("src/")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if path.is_dir() {
                Some(name)
            } else {
                name.strip_suffix(".rs").map(str::to_owned)
            }
        })
        .collect()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, m)| m.contains(&module))
}

/// The top-level module a file (`src/store/sqlite/ops.rs`) belongs to.
fn module_of(file: &str) -> String {
    let rel = file.strip_prefix("src/").unwrap_or(file);
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first).to_owned()
}

/// Every import of every file under `src/`, with crate-relative file names.
fn collect(root: &Path) -> Vec<Import> {
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    files.sort();
    let mut imports = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).expect("a source file");
        imports.extend(imports_of(&rel, &text));
    }
    imports
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// How deep a file's own module sits below the crate root: `lib.rs` 0, `config.rs` and
/// `store/mod.rs` 1, `store/traits.rs` and `store/sqlite/mod.rs` 2.
fn file_depth(rel: &str) -> usize {
    let parts: Vec<&str> = rel.strip_prefix("src/").unwrap_or(rel).split('/').collect();
    match parts.last() {
        Some(&"lib.rs") | Some(&"main.rs") if parts.len() == 1 => 0,
        Some(&"mod.rs") => parts.len() - 1,
        _ => parts.len(),
    }
}

/// The imports of one file: `crate::` paths (in `main.rs`, `herald::`), and `super::`
/// chains that reach the crate root.
fn imports_of(rel: &str, text: &str) -> Vec<Import> {
    let code: Vec<char> = blank_comments_and_literals(text).chars().collect();
    let root_name = if rel == "src/main.rs" {
        "herald"
    } else {
        "crate"
    };
    let inline = inline_module_depths(&code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if !starts_ident(&code, i) {
            i += 1;
            continue;
        }
        let word = ident_at(&code, i);
        let after = i + word.len();
        let path_start = i == 0 || !(code[i - 1] == ':' && i >= 2 && code[i - 2] == ':');
        if path_start && word == root_name && is_sep(&code, after) {
            for path in use_tree(&code, skip_ws(&code, after) + 2) {
                push(&mut out, rel, line_of(&code, i), path);
            }
        } else if path_start && word == "super" && is_sep(&code, after) {
            let (supers, rest) = super_chain(&code, i);
            if supers == file_depth(rel) + inline[i] {
                for path in use_tree(&code, rest) {
                    push(&mut out, rel, line_of(&code, i), path);
                }
            }
        }
        i = after;
    }
    out
}

fn push(out: &mut Vec<Import>, rel: &str, line: usize, path: Vec<String>) {
    let path: Vec<String> = path.into_iter().filter(|s| s != "self").collect();
    if !path.is_empty() {
        out.push(Import {
            file: rel.to_owned(),
            line,
            path,
        });
    }
}

fn line_of(code: &[char], i: usize) -> usize {
    code[..i].iter().filter(|c| **c == '\n').count() + 1
}

fn starts_ident(code: &[char], i: usize) -> bool {
    let c = code[i];
    (c.is_alphabetic() || c == '_') && (i == 0 || !is_ident_char(code[i - 1]))
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ident_at(code: &[char], i: usize) -> String {
    code[i..]
        .iter()
        .take_while(|c| is_ident_char(**c))
        .collect()
}

fn skip_ws(code: &[char], mut i: usize) -> usize {
    while i < code.len() && code[i].is_whitespace() {
        i += 1;
    }
    i
}

/// `::` at `i` (after optional whitespace).
fn is_sep(code: &[char], i: usize) -> bool {
    let i = skip_ws(code, i);
    i + 1 < code.len() && code[i] == ':' && code[i + 1] == ':'
}

/// `super::super::x`: how many `super`s, and where the rest of the path begins.
fn super_chain(code: &[char], mut i: usize) -> (usize, usize) {
    let mut n = 0;
    loop {
        i = skip_ws(code, i);
        if ident_at(code, i) == "super" && is_sep(code, i + 5) {
            n += 1;
            i = skip_ws(code, i + 5) + 2;
        } else {
            return (n, i);
        }
    }
}

/// The paths of a use tree starting at `i`: `a::b`, `a::{b, c::d}`, `a::*`, `{a, b}`.
/// Inline paths end where the path ends (`a::b(x)` is `a::b`).
fn use_tree(code: &[char], i: usize) -> Vec<Vec<String>> {
    let i = skip_ws(code, i);
    if i >= code.len() {
        return vec![Vec::new()];
    }
    if code[i] == '{' {
        return use_group(code, i + 1).0;
    }
    let word = ident_at(code, i);
    if word.is_empty() {
        return vec![Vec::new()]; // `*`, `<T>`: nothing more to name
    }
    let after = i + word.len();
    if !is_sep(code, after) {
        return vec![vec![word]];
    }
    let rest = skip_ws(code, after) + 2;
    use_tree(code, rest)
        .into_iter()
        .map(|tail| std::iter::once(word.clone()).chain(tail).collect())
        .collect()
}

/// The items of `{…}` from just after its `{`, and where it ends.
fn use_group(code: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut paths = Vec::new();
    loop {
        i = skip_ws(code, i);
        if i >= code.len() {
            return (paths, i);
        }
        match code[i] {
            '}' => return (paths, i + 1),
            ',' => i += 1,
            _ => {
                paths.extend(use_tree(code, i));
                i = end_of_item(code, i);
            }
        }
    }
}

/// Skips one item of a group (`c::{d, e} as f`) up to its `,` or the group's `}`.
fn end_of_item(code: &[char], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < code.len() {
        match code[i] {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            ',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    i
}

/// For each position, how many inline `mod x { … }` blocks enclose it.
fn inline_module_depths(code: &[char]) -> Vec<usize> {
    let mut depths = vec![0; code.len()];
    let mut braces = 0usize;
    let mut open_mods: Vec<usize> = Vec::new(); // the brace depth each inline module opened at
    let mut pending_mod = false;
    let mut i = 0;
    while i < code.len() {
        depths[i] = open_mods.len();
        let c = code[i];
        if starts_ident(code, i) {
            let word = ident_at(code, i);
            if word == "mod" {
                pending_mod = true;
            }
            for d in depths.iter_mut().skip(i).take(word.len()) {
                *d = open_mods.len();
            }
            i += word.len();
            continue;
        }
        match c {
            '{' => {
                braces += 1;
                if pending_mod {
                    open_mods.push(braces);
                }
                pending_mod = false;
            }
            '}' => {
                if open_mods.last() == Some(&braces) {
                    open_mods.pop();
                }
                braces = braces.saturating_sub(1);
            }
            ';' => pending_mod = false, // `mod x;`: a file, not a block
            _ => {}
        }
        i += 1;
    }
    depths
}

/// The source with comments, string and character literals replaced by spaces (newlines
/// kept, so line numbers still hold).
fn blank_comments_and_literals(text: &str) -> String {
    let s: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, cs: &[char]| {
        for c in cs {
            out.push(if *c == '\n' { '\n' } else { ' ' });
        }
    };
    while i < s.len() {
        let end = literal_or_comment_end(&s, i);
        if end > i {
            blank(&mut out, &s[i..end]);
            i = end;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Where the comment or literal starting at `i` ends (`i` when none starts there).
fn literal_or_comment_end(s: &[char], i: usize) -> usize {
    let at = |k: usize| s.get(k).copied().unwrap_or('\0');
    let ident_before = i > 0 && is_ident_char(s[i - 1]);
    match at(i) {
        '/' if at(i + 1) == '/' => (i..s.len()).find(|&k| s[k] == '\n').unwrap_or(s.len()),
        '/' if at(i + 1) == '*' => block_comment_end(s, i),
        '"' => quoted_end(s, i + 1, '"'),
        'b' if !ident_before && at(i + 1) == '"' => quoted_end(s, i + 2, '"'),
        'b' if !ident_before && at(i + 1) == '\'' => quoted_end(s, i + 2, '\''),
        'r' | 'b' if !ident_before => raw_string_end(s, i).unwrap_or(i),
        '\'' => char_literal_end(s, i).unwrap_or(i),
        _ => i,
    }
}

fn block_comment_end(s: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < s.len() {
        if s[i] == '/' && s[i + 1] == '*' {
            depth += 1;
            i += 2;
        } else if s[i] == '*' && s[i + 1] == '/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

/// The end of a `"…"` or `b'…'` body starting at `i`, past its closing `quote`.
fn quoted_end(s: &[char], mut i: usize, quote: char) -> usize {
    while i < s.len() {
        if s[i] == '\\' {
            i += 2;
        } else if s[i] == quote {
            return i + 1;
        } else {
            i += 1;
        }
    }
    s.len()
}

/// `r"…"`, `r#"…"#`, `br#"…"#`: the end, or `None` when `i` starts no raw string.
fn raw_string_end(s: &[char], i: usize) -> Option<usize> {
    let mut k = i;
    if s.get(k) == Some(&'b') {
        k += 1;
    }
    if s.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    let hashes = s[k..].iter().take_while(|c| **c == '#').count();
    k += hashes;
    if s.get(k) != Some(&'"') {
        return None;
    }
    k += 1;
    while k < s.len() {
        if s[k] == '"'
            && s[k + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == '#')
                .count()
                == hashes
        {
            return Some(k + 1 + hashes);
        }
        k += 1;
    }
    Some(s.len())
}

/// `'x'`, `'\n'`, `'\u{1F600}'`: the end, or `None` for a lifetime (`'a`, `'static`).
fn char_literal_end(s: &[char], i: usize) -> Option<usize> {
    match (s.get(i + 1), s.get(i + 2)) {
        (Some('\\'), _) => Some(quoted_end(s, i + 1, '\'')),
        (Some(_), Some('\'')) => Some(i + 3),
        _ => None,
    }
}

/// Every top-level module has a layer.
fn unplaced(modules: &BTreeSet<String>) -> Vec<String> {
    modules
        .iter()
        .filter(|m| layer_of(m).is_none())
        .map(|m| {
            format!(
                "src/{m} is a top-level module that LAYERS does not place: add it to the \
                 layer whose modules it imports and that import it"
            )
        })
        .collect()
}

/// The imports that remain once the allowed ones are set aside, and which allowances were
/// used.
fn apply_allowed(imports: &[Import]) -> (Vec<Import>, BTreeSet<usize>) {
    let mut used = BTreeSet::new();
    let mut kept = Vec::new();
    for import in imports {
        let from = module_of(&import.file);
        let allowance = ALLOWED
            .iter()
            .position(|(f, to, _)| *f == from && import.starts_with(to));
        match allowance {
            Some(n) => {
                used.insert(n);
            }
            None => kept.push(import.clone()),
        }
    }
    (kept, used)
}

fn stale_allowances(used: &BTreeSet<usize>) -> Vec<String> {
    ALLOWED
        .iter()
        .enumerate()
        .filter(|(n, _)| !used.contains(n))
        .map(|(_, (from, to, why))| {
            format!(
                "ALLOWED lets {from} import {to} ({why}), but nothing does any more: \
                 remove the entry"
            )
        })
        .collect()
}

fn store_imports(imports: &[Import]) -> Vec<String> {
    imports
        .iter()
        .filter(|i| module_of(&i.file) == "store")
        .filter(|i| STORE_NEVER.iter().any(|p| i.starts_with(p)))
        .map(|i| {
            format!(
                "the store imports {}, which stands on the store:\n  {}\n  \
                 move what both need down into the store (or below it)",
                i.top(),
                i.show()
            )
        })
        .collect()
}

fn upward(imports: &[Import], modules: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for import in imports {
        let from = module_of(&import.file);
        let to = target(import, modules);
        let (Some(a), Some(b)) = (layer_of(&from), layer_of(&to)) else {
            continue; // reported by `unplaced`
        };
        if from == to {
            continue;
        }
        if b > a {
            out.push(format!(
                "{from} (layer {}) imports {to} (layer {}), a layer above it:\n  {}",
                LAYERS[a].0,
                LAYERS[b].0,
                import.show()
            ));
        } else if APART
            .iter()
            .any(|(x, y)| (*x == from && *y == to) || (*y == from && *x == to))
        {
            out.push(format!(
                "{from} imports {to}; they stand side by side and share only what lies \
                 below them:\n  {}",
                import.show()
            ));
        }
    }
    out
}

/// The top-level module an import names; an item of the crate root is `lib`'s.
fn target(import: &Import, modules: &BTreeSet<String>) -> String {
    let top = import.top();
    if modules.contains(top) && top != "main" {
        top.to_owned()
    } else {
        "lib".to_owned()
    }
}

/// The cycles among top-level modules, each shown with one import per edge.
fn cycles(imports: &[Import], modules: &BTreeSet<String>) -> Vec<String> {
    let mut edges: BTreeMap<(String, String), &Import> = BTreeMap::new();
    for import in imports {
        let (from, to) = (module_of(&import.file), target(import, modules));
        if from != to {
            edges.entry((from, to)).or_insert(import);
        }
    }
    let graph: BTreeMap<&str, Vec<&str>> = edges.keys().fold(BTreeMap::new(), |mut g, (a, b)| {
        g.entry(a.as_str()).or_default().push(b.as_str());
        g
    });
    let mut out = Vec::new();
    let mut reported: BTreeSet<BTreeSet<&str>> = BTreeSet::new();
    for start in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, start) {
            let members: BTreeSet<&str> = cycle.iter().copied().collect();
            if reported.insert(members) {
                let steps: Vec<String> = cycle
                    .windows(2)
                    .map(|w| edges[&(w[0].to_owned(), w[1].to_owned())].show())
                    .map(|s| format!("  {s}"))
                    .collect();
                out.push(format!(
                    "import cycle {}:\n{}",
                    cycle.join(" → "),
                    steps.join("\n")
                ));
            }
        }
    }
    out
}

/// A shortest path from `start` back to itself (breadth first), as `[start, …, start]`.
fn cycle_through<'a>(
    graph: &BTreeMap<&'a str, Vec<&'a str>>,
    start: &'a str,
) -> Option<Vec<&'a str>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in graph.get(node).map(Vec::as_slice).unwrap_or(&[]) {
            if next == start {
                let mut path = vec![start, node];
                let mut at = node;
                while at != start {
                    at = came_from[at];
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            if next != start && !came_from.contains_key(next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

// The collector itself, on small inputs: what it must see and what it must not.

fn paths(rel: &str, text: &str) -> Vec<String> {
    imports_of(rel, text)
        .into_iter()
        .map(|i| format!("{}@{}", i.path.join("::"), i.line))
        .collect()
}

#[test]
fn the_collector_reads_use_trees_and_inline_paths() {
    let text = "use crate::{config::Config, store::{self, Store as S}};\n\
                fn f() { crate::clock::now_ms(); let _ = crate :: domain :: EventName::parse(\"x\"); }\n";
    assert_eq!(
        paths("src/engine/mod.rs", text),
        [
            "config::Config@1",
            "store@1",
            "store::Store@1",
            "clock::now_ms@2",
            "domain::EventName::parse@2"
        ]
    );
}

#[test]
fn the_collector_skips_comments_strings_and_chars() {
    let text = "//! Uses `crate::api::body`.\n\
                /* crate::pages /* nested */ crate::api */\n\
                let a = \"crate::api::x\"; let b = r#\"crate::api \"quoted\"\"#;\n\
                let c = '\"'; let d = b'\\''; fn g<'a>(x: &'a str) {}\n\
                use crate::store::Backend;\n";
    assert_eq!(paths("src/server/throttle.rs", text), ["store::Backend@5"]);
}

#[test]
fn the_collector_follows_super_only_out_of_the_top_module() {
    let text = "use super::model::Endpoint;\n\
                use super::super::config::Config;\n\
                mod tests { use super::*; use super::super::super::clock::now_ms; }\n";
    assert_eq!(
        paths("src/store/traits.rs", text),
        ["config::Config@2", "clock::now_ms@3"]
    );
    // `main.rs` is its own crate: it names the library as `herald`.
    assert_eq!(
        paths(
            "src/main.rs",
            "use herald::config::Config; use crate::x::Y;"
        ),
        ["config::Config@1"]
    );
}

#[test]
fn a_cycle_is_found_and_shown_with_its_imports() {
    let a = imports_of("src/config.rs", "use crate::domain::parse_rate_limit;");
    let b = imports_of(
        "src/domain/mod.rs",
        "\n\nfn f() { crate::config::parse_schedule(\"\"); }",
    );
    let modules: BTreeSet<String> = ["config", "domain"].map(String::from).into();
    let found = cycles(&[a, b].concat(), &modules);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("config → domain → config"),
        "{}",
        found[0]
    );
    assert!(
        found[0].contains("src/domain/mod.rs:3: crate::config::parse_schedule"),
        "{}",
        found[0]
    );
}

#[test]
fn upward_and_sideways_imports_are_refused() {
    let modules: BTreeSet<String> = ["store", "pages", "api", "engine"].map(String::from).into();
    let up = imports_of("src/store/traits.rs", "use crate::engine::plan::Plan;");
    assert_eq!(upward(&up, &modules).len(), 1);
    assert_eq!(store_imports(&up).len(), 1);
    let side = imports_of("src/pages/guard.rs", "use crate::api::body::read;");
    assert_eq!(upward(&side, &modules).len(), 1);
    let down = imports_of("src/api/mod.rs", "use crate::store::Store;");
    assert!(upward(&down, &modules).is_empty());
}
