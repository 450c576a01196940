//! JSON lines, CSV and text files decoded with a declared schema, in each mode (PERMISSIVE,
//! DROPMALFORMED, FAILFAST): the file source's own decoder, on the bytes of one file. The
//! first byte picks the format, mode and CSV header; the second the schema; the rest is the
//! file. A first byte of 0xff makes the rest a schema in DDL instead.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use sluice::connectors::file::flat_json::FlatJson;
use sluice::connectors::file::source::FileSource;
use sluice::pipeline::{FileFormat, ParseMode};

mod common;

const SCHEMAS: &[&str] = &[
    "id BIGINT, city STRING, amount BIGINT",
    "a STRING, b STRING",
    "ts TIMESTAMP, d DATE, ok BOOLEAN, x DOUBLE",
    "price DECIMAL(10,2), n INT, tiny TINYINT",
    "tags ARRAY<STRING>, attrs MAP<STRING, BIGINT>, nested STRUCT<a: BIGINT, b: STRING>",
    "value STRING",
    "id BIGINT, ts TIMESTAMP, f FLOAT, ok BOOLEAN, s STRING",
];

thread_local! {
    static DIR: PathBuf = tempfile::tempdir().unwrap().keep();
    static SOURCES: RefCell<HashMap<(u8, u8), FileSource>> = RefCell::new(HashMap::new());
}

fn source(config: u8, schema: u8, dir: &std::path::Path) -> Option<FileSource> {
    let format = match config % 3 {
        0 => FileFormat::Json,
        1 => FileFormat::Csv,
        _ => FileFormat::Text,
    };
    let reading = common::Reading {
        format,
        mode: match (config / 3) % 3 {
            0 => ParseMode::Permissive,
            1 => ParseMode::DropMalformed,
            _ => ParseMode::FailFast,
        },
        schema: match format {
            FileFormat::Text => "value STRING",
            _ => SCHEMAS[schema as usize % SCHEMAS.len()],
        },
        header: config & 0x40 != 0,
        sep: if config & 0x80 != 0 { b';' } else { b',' },
    };
    common::file_source(&reading, dir, &dir.join(format!("log-{config}-{schema}"))).ok()
}

/// The file source's fast JSON decoder reads a file only if arrow-json reads it too, and into
/// the same rows.
fn fast_path_agrees(ddl: &str, file: &[u8]) {
    let schema = sluice::schema::parse_ddl(ddl).expect("a fuzz target's schemas are valid DDL");
    let Some(fast) = FlatJson::new(&schema) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(file) else {
        return;
    };
    let Some(got) = fast.decode(text, 3) else {
        return;
    };
    let mut decoder = arrow_json::ReaderBuilder::new(schema)
        .with_batch_size(3)
        .build_decoder()
        .unwrap();
    let mut want = Vec::new();
    let mut rest = file;
    loop {
        let read = decoder
            .decode(rest)
            .expect("the fast path read what arrow-json refuses");
        rest = &rest[read..];
        if let Some(b) = decoder
            .flush()
            .expect("the fast path read what arrow-json refuses")
        {
            want.push(b);
        }
        if rest.is_empty() {
            break;
        }
    }
    assert!(!decoder.has_partial_record(), "arrow-json saw a partial record");
    assert_eq!(got, want, "the fast path read rows differently");
}

fuzz_target!(|data: &[u8]| {
    let [config, schema, file @ ..] = data else {
        return;
    };
    if *config == 0xff {
        if let Ok(text) = std::str::from_utf8(&data[1..]) {
            let _ = sluice::schema::parse_ddl(text);
        }
        return;
    }
    DIR.with(|dir| {
        std::fs::create_dir_all(dir.join("in")).unwrap();
        let path = dir.join("in").join("file");
        std::fs::write(&path, file).unwrap();
        SOURCES.with(|sources| {
            let mut sources = sources.borrow_mut();
            let key = (*config, *schema);
            if !sources.contains_key(&key) {
                let Some(s) = source(*config, *schema, dir) else {
                    return;
                };
                sources.insert(key, s);
            }
            if *config % 3 == 0 {
                fast_path_agrees(SCHEMAS[*schema as usize % SCHEMAS.len()], file);
            }
            if let Ok(batches) = sources[&key].read_file(&path) {
                for b in &batches {
                    // Every decoded row is well-formed Arrow.
                    for c in b.columns() {
                        c.to_data()
                            .validate_full()
                            .expect("the decoder built invalid Arrow");
                    }
                }
            }
        });
    });
});
