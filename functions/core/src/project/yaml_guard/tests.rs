use std::time::{Duration, Instant};

use super::*;

fn depth_refused_at(source: &str) -> Option<usize> {
    match check(source) {
        Err(Refusal::TooDeep { line }) => Some(line),
        _ => None,
    }
}

#[test]
fn ordinary_configs_pass() {
    for source in [
        "",
        "script: echo\n",
        "description: Build it\nscript: |\n  cargo test\ntimeout: 30m\nconcurrency: 2\n\
         env: { RUST_LOG: info, N: 3 }\nvars:\n  - { name: target, type: select, values: [staging, prod] }\n\
         downstream: [deploy]\ncrontab: '*/5 * * * *'\nscm: { url: 'https://x/y.git', branch: main }\n",
        "vars:\n  - name: a\n    values:\n      - x\n      - y\n",
        "%YAML 1.1\n---\nscript: echo\n...\n",
        "\u{FEFF}script: !!str echo\n",
    ] {
        assert_eq!(check(source), Ok(()), "{source:?}");
    }
}

#[test]
fn brackets_in_text_are_not_nesting() {
    let opening = "[{".repeat(40);
    // In a block scalar (even lines that start with brackets), quotes, comments and
    // plain text, brackets are text.
    let script = format!("script: |\n  [[ -f x ]] && echo {opening}\n  {opening}\n  echo ok\nretries: 1\n");
    assert_eq!(check(&script), Ok(()));
    let folded = format!("description: >-\n    {opening}\n\n    {opening}\nscript: echo\n");
    assert_eq!(check(&folded), Ok(()));
    for quoted in [
        format!("description: \"{opening}\"\n"),
        format!("description: '{opening}'\n"),
        format!("description: \"a\\\" {opening}\"\n"),
        format!("description: 'it''s {opening}'\n"),
        format!("description: \"two\n  lines {opening}\"\n"),
        format!("description: x # {opening}\n# {opening}\n"),
        format!("description: see {opening} and more\n"),
        format!("description: a\n  {opening}\n  continued\n"),
        format!("env: {{ A: \"{opening}\", B: '{opening}' }}\n"),
        format!("description: !<tag:{}> x\n", "[".repeat(40)),
    ] {
        assert_eq!(check(&quoted), Ok(()), "{quoted:?}");
    }
}

#[test]
fn nesting_up_to_the_limit_passes_and_one_more_is_refused() {
    let flow = |n: usize| format!("script: echo\nenv:\n  X: {}{}\n", "[".repeat(n - 1), "]".repeat(n - 1));
    // `env` is one indentation level, the top mapping another.
    assert_eq!(check(&flow(MAX_NESTING - 1)), Ok(()));
    assert_eq!(depth_refused_at(&flow(MAX_NESTING)), Some(3));
    // The first `-` is indented: at the key's own column it would continue the
    // mapping's level rather than open one.
    let block = |n: usize| format!("script:\n  {}x\n", "- ".repeat(n));
    assert_eq!(check(&block(MAX_NESTING - 1)), Ok(()));
    assert_eq!(depth_refused_at(&block(MAX_NESTING)), Some(2));
    let maps = |n: usize| (0..n).map(|i| format!("{}a:\n", " ".repeat(i))).collect::<String>();
    assert_eq!(check(&maps(MAX_NESTING)), Ok(()));
    assert_eq!(depth_refused_at(&maps(MAX_NESTING + 1)), Some(MAX_NESTING + 1));
    let mixed = format!("a:\n  - b: {}\n", "{c: [".repeat(20));
    assert_eq!(depth_refused_at(&mixed), Some(2));
}

/// Texts where brackets could pass for text with a careless scan, but where libyaml
/// reads real nesting.
#[test]
fn nesting_that_looks_like_text_is_still_counted() {
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    for tricky in [
        // A quote that starts a continuation line of a plain scalar in a flow sequence
        // is text, so what follows its `: ` is nesting.
        format!("key: [a\n'b: {deep}'\n]\n"),
        // A `#` inside a multi-line quoted scalar is not a comment.
        format!("key: [ \"a\n  #\", {deep} ]\n"),
        // The plain scalar's continuation line starting with `[` is text; the next
        // key's value is not.
        format!("description: a\n  [ 'x\nkey: {deep}\n  '\n"),
        // A block scalar ends at the first less indented line.
        format!("- key: |\n    text\n  other: {deep}\n"),
        format!("script: |3\n   x\n  y: {deep}\n"),
        // Comments end at the line break.
        format!("a: 1 # {deep}\nb: {deep}\n"),
        // Anchors, tags and aliases are not part of the value.
        format!("a: &x {deep}\n"),
        format!("a: !!seq {deep}\n"),
        format!("a: [*x, {deep}]\n"),
        // A line break in a document.
        format!("a: b\r\nc: {deep}\r\n"),
        format!("a: b\u{2028}c: {deep}\n"),
    ] {
        assert!(depth_refused_at(&tricky).is_some(), "{tricky:?}");
    }
}

#[test]
fn stops_where_the_yaml_reader_stops() {
    // libyaml refuses control characters and never reads past them.
    let after_nul = format!("script: echo\n\u{0}{}", "[".repeat(100));
    assert_eq!(check(&after_nul), Ok(()));
}

#[test]
fn huge_nesting_is_refused_in_a_blink() {
    // serde_yaml_ng alone takes seconds to minutes on these (see the module docs).
    let size = 156 * 1024;
    for deep in ["[".repeat(size), "{a: ".repeat(size / 4), "- ".repeat(size / 2)] {
        let start = Instant::now();
        assert!(depth_refused_at(&deep).is_some(), "{:?}", &deep[..8]);
        assert!(start.elapsed() < Duration::from_millis(10), "{:?}", start.elapsed());
    }
    // Nesting after 78 KB of comments: the scan reads them all first (about 4 ms in
    // an unoptimised test build, well under 1 ms optimised).
    let padded = format!("{}{}", "# padding\n".repeat(size / 20), "[".repeat(size / 2));
    let start = Instant::now();
    assert_eq!(depth_refused_at(&padded), Some(size / 20 + 1));
    assert!(start.elapsed() < Duration::from_millis(100), "{:?}", start.elapsed());
}

#[test]
fn a_long_flat_file_is_scanned_quickly() {
    let line = "  - { name: target, type: select, values: [\"staging\", 'prod', other] } # note\n";
    let source = format!("vars:\n{}", line.repeat(256 * 1024 / line.len()));
    // Linear: about 3 ms optimised, 35 ms in an unoptimised test build.
    let start = Instant::now();
    assert_eq!(Scanner::new(&source).run().map(|shape| shape.aliases), Ok(0));
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
}

#[test]
fn alias_bombs_are_refused() {
    // Billion laughs: nine levels of nine aliases each. Padding raises serde_yaml_ng's
    // own cap on alias jumps (100 per event) so that the count is what stops it.
    let mut laughs =
        format!("pad: [{}]\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n", "p, ".repeat(5000));
    for (name, prev) in
        ["b", "c", "d", "e", "f", "g", "h", "i"].into_iter().zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let start = Instant::now();
    assert_eq!(check(&laughs), Err(Refusal::TooManyValues));
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());

    // Values of every kind are counted: none stops the count before the bomb.
    let kinds = format!(
        "a: &x [~, true, 1, -1, 1.5, 340282366920938463463374607431768211455, -170141183460469231731687303715884105728, !t x, !t [y]]\nb: *x\n{laughs}"
    );
    assert_eq!(check(&kinds), Err(Refusal::TooManyValues));

    // No nesting to speak of, but each of 10,000 aliases repeats 10,000 values.
    let wide = format!(
        "vars:\n  - &v {{ name: x, values: [{}] }}\n{}",
        "a, ".repeat(10_000),
        "  - *v\n".repeat(10_000)
    );
    let start = Instant::now();
    assert_eq!(check(&wide), Err(Refusal::TooManyValues));
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
}

#[test]
fn a_few_aliases_pass() {
    let source = "vars:\n  - { name: a, type: select, values: &envs [staging, prod] }\n  \
                  - { name: b, type: select, values: *envs }\nscript: echo\n";
    assert_eq!(check(source), Ok(()));
}
