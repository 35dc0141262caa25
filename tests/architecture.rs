//! The shape of `src/` that ARCHITECTURE.md promises: no import cycles
//! between sibling modules, and no file past ~800 lines without a reason
//! written at its top.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the crate, as a path (`["gateway", "connect"]`), with its source.
fn modules() -> BTreeMap<Vec<String>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    walk(&root, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap().with_extension("");
        let mut path: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(
            path.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            path.pop();
        }
        out.insert(path, std::fs::read_to_string(&f).unwrap());
    }
    out
}

/// Source without comments and string literals, so paths in prose or
/// messages do not count.
fn code_only(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // a char literal ('"', '\n'); lifetimes are left alone
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The module paths `module`'s code names through `crate::` and `super::`,
/// including those inside `use` groups (`use super::{a, b::c}`).
fn references(
    module: &[String],
    src: &str,
    known: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let code = code_only(src);
    let mut out = BTreeSet::new();
    let idents = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|x| x.trim().to_string())
            .take_while(|x| !x.is_empty() && x.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .collect()
    };
    // Starts: every `crate::` and `super::` chain, then the heads of `{…}` groups after it.
    let bytes = code.as_bytes();
    for (start, prefix) in code
        .match_indices("crate::")
        .map(|(i, _)| (i, "crate"))
        .chain(code.match_indices("super::").map(|(i, _)| (i, "super")))
    {
        // `super::super::x` is handled from its first `super`.
        if prefix == "super" && start >= 7 && &code[start - 7..start] == "super::" {
            continue;
        }
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let mut base: Vec<String> = if prefix == "crate" {
            vec![]
        } else {
            module.to_vec()
        };
        let mut rest = &code[start..];
        loop {
            if let Some(r) = rest.strip_prefix("crate::") {
                rest = r;
            } else if let Some(r) = rest.strip_prefix("super::") {
                // The file's own module is `module`; `super` is its parent.
                base.pop();
                rest = r;
            } else {
                break;
            }
        }
        // A `{…}` group: each item's leading path.
        let (chain, group) = match rest.find([
            '{', ';', ' ', '(', ')', ',', '<', '>', '\n', '!', '.', '&', '*', '=', '[', ']',
        ]) {
            Some(i) if rest.as_bytes()[i] == b'{' && (i == 0 || rest[..i].ends_with("::")) => {
                let end = rest[i..].find('}').map_or(rest.len(), |j| i + j);
                (&rest[..i], Some(&rest[i + 1..end]))
            }
            Some(i) => (&rest[..i], None),
            None => (rest, None),
        };
        let mut heads: Vec<Vec<String>> = vec![];
        let stem = idents(chain);
        match group {
            Some(g) => {
                for item in g.split(',') {
                    let mut p = stem.clone();
                    p.extend(idents(item.trim().trim_start_matches('{')));
                    heads.push(p);
                }
            }
            None => heads.push(stem),
        }
        for h in heads {
            let mut full = base.clone();
            full.extend(h);
            // The longest prefix that is a module.
            while !full.is_empty() && !known.contains(&full) {
                full.pop();
            }
            out.insert(full);
        }
    }
    out
}

#[test]
fn no_import_cycles_between_sibling_modules() {
    let mods = modules();
    let known: BTreeSet<Vec<String>> = mods.keys().cloned().collect();
    // parent -> (child -> children it imports)
    let mut edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (m, src) in &mods {
        for t in references(m, src, &known) {
            let common = m.iter().zip(&t).take_while(|(a, b)| a == b).count();
            // One is inside the other (a child using its parent, a parent its child).
            if common == m.len() || common == t.len() {
                continue;
            }
            edges
                .entry(m[..common].to_vec())
                .or_default()
                .entry(m[common].clone())
                .or_default()
                .insert(t[common].clone());
        }
    }
    assert!(
        edges
            .get(&vec![])
            .is_some_and(|e| e.contains_key("gateway")),
        "the scan found the crate's imports"
    );
    let mut cycles = vec![];
    for (parent, graph) in &edges {
        // Depth-first search for a back edge.
        fn visit<'a>(
            n: &'a str,
            g: &'a BTreeMap<String, BTreeSet<String>>,
            stack: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
            found: &mut Vec<String>,
        ) {
            if let Some(i) = stack.iter().position(|x| *x == n) {
                let mut c: Vec<&str> = stack[i..].to_vec();
                c.push(n);
                found.push(c.join(" -> "));
                return;
            }
            if !done.insert(n) {
                return;
            }
            stack.push(n);
            for next in g.get(n).into_iter().flatten() {
                visit(next, g, stack, done, found);
            }
            stack.pop();
        }
        let mut done = BTreeSet::new();
        for n in graph.keys() {
            let mut found = vec![];
            visit(n, graph, &mut vec![], &mut done, &mut found);
            for c in found {
                cycles.push(format!(
                    "in {}: {c}",
                    if parent.is_empty() {
                        "crate".into()
                    } else {
                        parent.join("::")
                    }
                ));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between sibling modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_scan_sees_use_groups_and_super() {
    let known: BTreeSet<Vec<String>> = [
        vec![],
        vec!["a".to_string()],
        vec!["a".into(), "b".into()],
        vec!["a".into(), "c".into()],
        vec!["d".into()],
    ]
    .into_iter()
    .collect();
    let m = vec!["a".to_string(), "b".to_string()];
    let src =
        "use super::{c::X, Y};\n// crate::d::z in a comment\nfn f() { let s = \"crate::d\"; }\n";
    let r = references(&m, src, &known);
    assert!(r.contains(&vec!["a".to_string(), "c".to_string()]), "{r:?}");
    assert!(
        !r.contains(&vec!["d".to_string()]),
        "comments and strings do not count: {r:?}"
    );
    let r = references(&m, "fn g() { crate::d::f(); }", &known);
    assert!(r.contains(&vec!["d".to_string()]), "{r:?}");
}

#[test]
fn long_files_say_why_at_their_top() {
    let mods = modules();
    let mut long = vec![];
    for (m, src) in &mods {
        let lines = src.lines().count();
        let head: String = src.lines().take(15).collect::<Vec<_>>().join("\n");
        if lines > 850 && !head.contains("Why this file is long:") {
            long.push(format!("{} ({lines} lines)", m.join("/")));
        }
    }
    assert!(
        long.is_empty(),
        "files over ~800 lines without \"Why this file is long:\" at their top: {long:?}"
    );
}
