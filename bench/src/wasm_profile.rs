//! What the widget's wasm is made of, by crate: its function bodies grouped by the first crate
//! named in each function's name, plus its data segments (the stylesheet, every sentence,
//! serde's field names, tables) as one row. The method of `docs/WIDGET-SIZE.md`'s tables,
//! which used `twiggy top`; here it runs in every bench, so BENCHMARKS.md lists the top
//! contributors of the build it measured.
//!
//! It reads the wasm as `wasm-bindgen` leaves it, before `wasm-opt` (which is what drops the
//! function names in the release build), so the bytes are those of the unoptimised module;
//! `wasm-opt` then shrinks the whole by about a tenth. A crate is recognised by the disambiguator the demangler writes after it
//! (`frontend[c2c3459f223b6cf4]::…`); `<X as Trait>::f` belongs to X, `<_ as Trait>::f` to the
//! trait's crate.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use wasmparser::{KnownCustom, Name, Parser, Payload, TypeRef};

/// The row for all data segments.
pub const DATA: &str = "read-only data (strings, CSS, tables)";
/// Functions with no name, or a name that names no crate (C symbols, linker stubs).
pub const OTHER: &str = "(other: unnamed, C, linker stubs)";

/// One group's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub group: String,
    pub bytes: u64,
}

/// The groups of `wasm`, largest first (ties by name), and the total of code and data.
pub fn by_crate(wasm: &[u8]) -> Result<(Vec<Share>, u64), String> {
    let bad = |e: wasmparser::BinaryReaderError| format!("not a wasm module: {e}");
    let mut imported_functions = 0u32;
    let mut bodies: Vec<u64> = Vec::new();
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut data = 0u64;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(bad)? {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    if matches!(import.map_err(bad)?.ty, TypeRef::Func(_)) {
                        imported_functions += 1;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => bodies.push(body.range().len() as u64),
            Payload::DataSection(segments) => {
                for segment in segments {
                    data += segment.map_err(bad)?.data.len() as u64;
                }
            }
            Payload::CustomSection(custom) => {
                if let KnownCustom::Name(subsections) = custom.as_known() {
                    for subsection in subsections {
                        if let Name::Function(map) = subsection.map_err(bad)? {
                            for naming in map {
                                let naming = naming.map_err(bad)?;
                                names.insert(naming.index, naming.name.to_owned());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut groups: HashMap<&str, u64> = HashMap::new();
    for (i, size) in bodies.iter().enumerate() {
        let index = imported_functions + i as u32;
        let group = names
            .get(&index)
            .and_then(|name| crate_of(name))
            .unwrap_or(OTHER);
        *groups.entry(group).or_default() += size;
    }
    if data > 0 {
        groups.insert(DATA, data);
    }
    let total: u64 = groups.values().sum();
    // A module whose names are not demangled Rust paths with disambiguators (a stripped name
    // section, legacy `…::h<hash>` names) would come out as one meaningless row.
    if groups.get(OTHER).is_some_and(|&other| other * 2 > total) {
        return Err(format!(
            "most of the code has no crate in its name ({OTHER}): no name section, or names \
             not in the form `crate[hash]::path`"
        ));
    }
    let mut shares: Vec<Share> = groups
        .into_iter()
        .map(|(group, bytes)| Share {
            group: group.to_owned(),
            bytes,
        })
        .collect();
    shares.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.group.cmp(&b.group)));
    Ok((shares, total))
}

/// The first crate named in a demangled Rust name: the first identifier followed by a
/// disambiguator in brackets and a path (`tachys[63b6e88fa1e454da]::…`). `None` for names
/// without one.
pub fn crate_of(name: &str) -> Option<&str> {
    let bytes = name.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident = b.is_ascii_alphanumeric() || b == b'_';
        match (ident, start) {
            (true, None) => start = Some(i),
            (true, Some(_)) => {}
            (false, Some(s)) => {
                if b == b'[' && is_disambiguator(&name[i + 1..]) {
                    return Some(&name[s..i]);
                }
                start = None;
            }
            (false, None) => {}
        }
    }
    None
}

/// Whether `rest` starts with lowercase hex digits, `]` and the path going on (`::`).
fn is_disambiguator(rest: &str) -> bool {
    let digits = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .count();
    digits > 0 && rest[digits..].starts_with("]::")
}

/// The widget's wasm as cargo built it (`target/wasm32-unknown-unknown/wasm-release`), run
/// through `wasm-bindgen` (the pinned CLI `cargo xtask setup` installs) into a temporary
/// directory, and profiled.
pub fn of_release_build(root: &Path) -> Result<(Vec<Share>, u64), String> {
    let built = root.join("target/wasm32-unknown-unknown/wasm-release/sg-refund.wasm");
    if !built.is_file() {
        return Err(format!(
            "no release build at {} (`cargo xtask widget` makes it)",
            built.display()
        ));
    }
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    let status = Command::new("wasm-bindgen")
        .args(["--target", "web", "--out-dir"])
        .arg(out.path())
        .arg(&built)
        .status()
        .map_err(|e| format!("cannot run wasm-bindgen: {e}"))?;
    if !status.success() {
        return Err(format!("wasm-bindgen failed: {status}"));
    }
    let wasm = std::fs::read(out.path().join("sg-refund_bg.wasm")).map_err(|e| e.to_string())?;
    by_crate(&wasm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_belongs_to_the_first_crate_its_name_names() {
        let cases = [
            (
                "frontend[c2c3459f223b6cf4]::components::widget::__component_refund_widget",
                Some("frontend"),
            ),
            (
                "<frontend[c2c3]::api::Client>::call::{closure#0}",
                Some("frontend"),
            ),
            (
                "<frontend[c2c3]::x::{closure#0} as tachys[63b6]::view::Render>::build",
                Some("frontend"),
            ),
            (
                "<_ as tachys[63b6]::view::any_view::IntoAny>::into_any::rebuild::<leptos[b288]::View>",
                Some("tachys"),
            ),
            (
                "<&mut serde_wasm_bindgen[14b0]::de::Deserializer as serde_core[473e]::de::Deserializer>",
                Some("serde_wasm_bindgen"),
            ),
            ("core[1b80778acbf7b3a4]::fmt::write", Some("core")),
            ("elem[0]", None),
            ("memcpy", None),
            ("data[zz]", None),
            ("main", None),
        ];
        for (name, expected) in cases {
            assert_eq!(crate_of(name), expected, "{name}");
        }
    }

    /// A module by hand: one imported function, three defined ones (two named in crate `a`,
    /// one in `b`; bodies of 3, 4 and 5 bytes after their size byte), and a data segment of
    /// 8 bytes.
    fn module() -> Vec<u8> {
        fn section(id: u8, body: &[u8]) -> Vec<u8> {
            let mut s = vec![id, body.len() as u8];
            s.extend_from_slice(body);
            s
        }
        fn name(s: &str) -> Vec<u8> {
            let mut v = vec![s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            v
        }
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        // type 0: () -> ()
        wasm.extend(section(1, &[1, 0x60, 0, 0]));
        // import "m" "f" as function of type 0
        wasm.extend(section(2, &[1, 1, b'm', 1, b'f', 0, 0]));
        // three functions of type 0
        wasm.extend(section(3, &[3, 0, 0, 0]));
        // memory: min 1 page
        wasm.extend(section(5, &[1, 0, 1]));
        // bodies: size byte, no locals, nops, end (entry sizes 4, 5, 6 with the size byte)
        let mut code = vec![3];
        code.extend([3, 0, 0x01, 0x0b]);
        code.extend([4, 0, 0x01, 0x01, 0x0b]);
        code.extend([5, 0, 0x01, 0x01, 0x01, 0x0b]);
        wasm.extend(section(10, &code));
        // one active data segment at offset 0: 8 bytes
        let mut data = vec![1, 0, 0x41, 0, 0x0b, 8];
        data.extend(b"strings!");
        wasm.extend(section(11, &data));
        // the name section: function names of indices 1, 2, 3
        let mut map = vec![3];
        for (index, n) in [
            (1u8, "a[0f]::x"),
            (2, "<a[0f]::y as b[1e]::T>::f"),
            (3, "b[1e]::z"),
        ] {
            map.push(index);
            map.extend(name(n));
        }
        let mut names = name("name");
        names.push(1);
        names.push(map.len() as u8);
        names.extend(map);
        wasm.extend(section(0, &names));
        wasm
    }

    #[test]
    fn bodies_are_summed_by_crate_and_the_data_is_one_row() {
        let (shares, total) = by_crate(&module()).expect("a valid module");
        let rows: Vec<(&str, u64)> = shares.iter().map(|s| (s.group.as_str(), s.bytes)).collect();
        // Largest first; `body.range()` is a body after its size byte; the imported function
        // is not a body, so no row of its own.
        assert_eq!(rows, [(DATA, 8), ("a", 3 + 4), ("b", 5)]);
        assert_eq!(total, 8 + 3 + 4 + 5);
    }

    #[test]
    fn what_is_not_wasm_is_an_error() {
        assert!(by_crate(b"not wasm").is_err());
    }

    #[test]
    fn a_module_whose_names_name_no_crates_is_an_error() {
        let mut wasm = module();
        // Same lengths, no `[hash]::` anywhere.
        for (from, to) in [
            (&b"a[0f]::x"[..], &b"a__0f__x"[..]),
            (b"<a[0f]::y as b[1e]::T>::f", b"<a__0f__y as b__1e__T>__f"),
            (b"b[1e]::z", b"b__1e__z"),
        ] {
            let at = wasm
                .windows(from.len())
                .position(|w| w == from)
                .expect("the name");
            wasm[at..at + to.len()].copy_from_slice(to);
        }
        let error = by_crate(&wasm).expect_err("names without crates");
        assert!(error.contains("no crate"), "{error}");
    }
}
