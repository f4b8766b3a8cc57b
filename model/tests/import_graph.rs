//! The model's import graph has no cycle of more than two files
//! (docs/architecture.md, "How the modules depend on each other").
//!
//! Parses every `crate::module` path outside `#[cfg(test)]` code in
//! `model/src/*.rs` (a `use crate::…` line, a `use crate::{…}` group, or a
//! path written inline) and fails if some file reaches itself through two
//! or more others. Two files that use each other (`cluster` ↔ `walsender`,
//! `node` ↔ `backend`: a process module and the state it acts on) are
//! allowed; a longer circle is not.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The code of a file without its `#[cfg(test)]` items and comments.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            // Skip the item that follows: one line, or a braced block.
            let mut depth = 0i32;
            let mut opened = false;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                opened |= l.contains('{');
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The modules a file's code names through `crate::`.
fn imports(code: &str, modules: &BTreeSet<String>, macros: &BTreeMap<&str, &str>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            // use crate::{a::X, b::{Y, Z}}: the first segment of each top-level item
            let mut depth = 0;
            let mut items = vec![String::new()];
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(String::new()),
                    _ => items.last_mut().unwrap().push(c),
                }
            }
            items.iter().map(|s| ident(s.trim())).collect()
        } else {
            vec![ident(rest)]
        };
        for n in names {
            if modules.contains(&n) {
                found.insert(n);
            } else if let Some(m) = macros.get(n.as_str()) {
                found.insert(m.to_string());
            }
        }
    }
    found
}

/// Each file of `model/src` but `lib.rs` and `testkit.rs`, by module name.
fn model_sources() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut texts = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if name == "lib" || name == "testkit" {
                continue;
            }
            texts.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    texts
}

fn model_graph() -> Graph {
    let texts = model_sources();
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    // #[macro_export] macros live at the crate root; attribute them to their file.
    let mut macros = BTreeMap::new();
    for (m, text) in &texts {
        let mut lines = text.lines();
        while let Some(l) = lines.next() {
            if l.trim() == "#[macro_export]"
                && let Some(def) = lines.next().and_then(|d| d.trim().strip_prefix("macro_rules! "))
            {
                let name: String = def.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                macros.insert(name, m.clone());
            }
        }
    }
    let macros: BTreeMap<&str, &str> = macros.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    texts
        .iter()
        .map(|(m, text)| {
            let mut deps = imports(&production_code(text), &modules, &macros);
            deps.remove(m);
            (m.clone(), deps)
        })
        .collect()
}

/// A path from `from` to `to` avoiding `banned`, if any (breadth first, so
/// the shortest).
fn path(g: &Graph, from: &str, to: &str, banned: &str) -> Option<Vec<String>> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from, banned]);
    while let Some(u) = queue.pop_front() {
        if u == to {
            let mut p = vec![to.to_string()];
            let mut at = to;
            while let Some(&b) = prev.get(at) {
                p.push(b.to_string());
                at = b;
            }
            p.reverse();
            return Some(p);
        }
        for v in g.get(u).into_iter().flatten() {
            if seen.insert(v.as_str()) {
                prev.insert(v.as_str(), u);
                queue.push_back(v.as_str());
            }
        }
    }
    None
}

/// Every edge u → v that lies on a simple cycle of three or more files,
/// with one such cycle: u → v → w → … → u, w ≠ u, the path from w avoiding v.
fn long_cycles(g: &Graph) -> Vec<Vec<String>> {
    let mut cycles = Vec::new();
    let mut seen = BTreeSet::new();
    for (u, vs) in g {
        for v in vs {
            for w in g.get(v).into_iter().flatten() {
                if w == u || w == v {
                    continue;
                }
                if let Some(rest) = path(g, w, u, v) {
                    let mut c = vec![u.clone(), v.clone()];
                    c.extend(rest);
                    let key: BTreeSet<String> = c.iter().cloned().collect();
                    if seen.insert(key) {
                        cycles.push(c);
                    }
                    break;
                }
            }
        }
    }
    cycles
}

#[test]
fn no_import_cycle_of_more_than_two_files() {
    let g = model_graph();
    assert!(g.len() > 20, "read the model's files: {:?}", g.keys());
    assert!(g["cluster"].contains("node"), "the parser sees `use crate::node::…`");
    assert!(g["backend"].contains("log"), "the parser maps `crate::slog` to log.rs");
    let cycles = long_cycles(&g);
    let shown: Vec<String> = cycles.iter().map(|c| c.join(" → ")).collect();
    assert!(cycles.is_empty(), "import cycles of more than two files in model/src:\n{}", shown.join("\n"));
}

#[test]
fn the_checker_finds_a_planted_cycle_and_allows_a_pair() {
    let edges = |list: &[(&str, &str)]| -> Graph {
        let mut g = Graph::new();
        for (a, b) in list {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    // A pair that uses each other, and a star of pairs around it, is allowed.
    assert!(long_cycles(&edges(&[("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")])).is_empty());
    // a → b → c → a is not.
    let c = long_cycles(&edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].len(), 4, "{:?}", c[0]);
    // The parser: a group, an inline path, a cfg(test) module skipped, a macro.
    let modules: BTreeSet<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
    let macros = BTreeMap::from([("m", "e")]);
    let code = production_code(
        "use crate::{a::X, b::{Y, Z}};\nfn f() { crate::c::g(); crate::m!(); }\n// crate::x\n#[cfg(test)]\nmod tests {\n    use crate::d::W;\n}\n",
    );
    let got: Vec<String> = imports(&code, &modules, &macros).into_iter().collect();
    assert_eq!(got, ["a", "b", "c", "e"]);
}

/// The simulator's settings a file's code reads: `scheduler.*`, `log.*`
/// and the fault rates (every `faults.*` but `crash_images`, which shapes
/// the power-loss event itself), as `.scheduler`, `.log.` or `.faults.x`.
fn simulator_settings_read(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for section in ["scheduler", "log", "faults"] {
        let pat = format!("settings.{section}");
        for (i, _) in code.match_indices(&pat) {
            let rest = &code[i + pat.len()..];
            let field: String = rest
                .strip_prefix('.')
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !(section == "faults" && field == "crash_images") {
                found.insert(format!("{section}.{field}"));
            }
        }
    }
    found
}

/// docs/architecture.md, "Settings: the model's and the simulator's": the
/// model reads none of the settings that belong to the simulator (which
/// event to pick, how often faults strike, how the log looks), so they can
/// leave the model crate without touching its code. `settings.rs` defines
/// and validates them.
#[test]
fn the_model_reads_no_simulator_setting() {
    let mut reads = Vec::new();
    for (m, text) in model_sources() {
        if m != "settings" {
            for s in simulator_settings_read(&production_code(&text)) {
                reads.push(format!("{m}.rs reads {s}"));
            }
        }
    }
    assert!(reads.is_empty(), "the model reads the simulator's settings:\n{}", reads.join("\n"));
    // The finder sees a planted read, and lets crash_images and the
    // model's own sections through.
    let planted = "fn f(c: &Cluster) { c.settings.faults.power_loss; c.settings.scheduler.weights; env.settings.log.lsn_format; c.settings.faults.crash_images; c.settings.rules.wal_before_data; }";
    let got: Vec<String> = simulator_settings_read(planted).into_iter().collect();
    assert_eq!(got, ["faults.power_loss", "log.lsn_format", "scheduler.weights"]);
}

#[test]
#[ignore = "prints the graph: cargo test -p walsim-model --test import_graph -- --ignored --nocapture"]
fn print_the_graph() {
    for (m, deps) in model_graph() {
        println!("{m} -> {}", deps.into_iter().collect::<Vec<_>>().join(", "));
    }
    for c in long_cycles(&model_graph()) {
        println!("cycle: {}", c.join(" → "));
    }
}
