#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/) from the repository's own
pipelines, fixtures and example modules, and from a checkpoint written by real runs.

    python3 fuzz/seed.py CHECKPOINTS

CHECKPOINTS holds `agg/` (a windowed aggregation's checkpoint `ckpt/` and file sink `out/`)
and `profile/` (examples/user-profile.toml's checkpoint); scripts in the closing note of
issue 34 made them. The corpora are committed; rerun this only to refresh them.
"""
import hashlib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main():
    ckpt = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else None
    # The pipeline file: every pipeline in the repository.
    for p in sorted((ROOT / "examples").rglob("*.toml")) + sorted((ROOT / "tests/fixtures").rglob("*.toml")):
        if "target" not in p.parts:
            put("pipeline", p.read_bytes())
    # SQL: the Spark fixtures' queries and the Nexmark queries.
    for p in sorted((ROOT / "tests/fixtures/spark-sql").rglob("*.sql")):
        put("sql", p.read_bytes())
    for p in sorted((ROOT / "examples/nexmark-sql").glob("*.toml")):
        text = p.read_text()
        if 'sql = """' in text:
            put("sql", text.split('sql = """', 1)[1].split('"""', 1)[0].encode())
    put("sql", b"SELECT o.id, u.name FROM orders o JOIN users u ON o.uid = u.id WHERE o.amount > 10")
    put("sql", b"SELECT window.start, category, sum(amount) FROM orders GROUP BY window(order_time, '5 minutes'), category")
    # Expressions: the Spark conformance cases, as selectExpr (0), where (1), withColumn (2).
    for i, line in enumerate((ROOT / "tests/fixtures/spark-expressions/cases.txt").read_text().splitlines()):
        if line.strip() and not line.startswith("#"):
            put("expression", bytes([i % 3]) + line.encode())
    # Decoding: format, mode and header in the first byte, the schema in the second.
    json_lines = b'{"id":1,"city":"Seoul","amount":10}\n{"id":2,"city":\n{"id":"x","city":"Busan","amount":3}\n'
    csv = b"id,city,amount\n1,Seoul,10\n2,Busan,x\n"
    for config in range(0, 9):
        put("decode", bytes([config, 0]) + (csv if config % 3 == 1 else json_lines))
    put("decode", bytes([0x40 | 1, 1]) + b"a,b\nx,y\n")
    put("decode", bytes([0, 2]) + b'{"ts":"2024-01-01T00:00:00Z","d":"2024-01-01","ok":true,"x":1.5}\n')
    put("decode", bytes([0, 3]) + b'{"price":"12.34","n":7,"tiny":300}\n')
    put("decode", bytes([0, 4]) + b'{"tags":["a",null],"attrs":{"k":1},"nested":{"a":1,"b":"s"}}\n')
    put("decode", bytes([2, 5]) + b"a line\nanother\n")
    # The flat schema the fast JSON decoder takes: its forms, and ones it leaves to arrow-json.
    put("decode", bytes([0, 6]) + b'{"id":1,"ts":"2024-02-29T23:59:59.123456Z","f":0.5,"ok":true,"s":"a"}\n{"ts":"1969-12-31T23:59:59.5","x":null}\n{}\n')
    put("decode", bytes([3, 6]) + b'{"id":-0,"ts":"2024-05-01 12:00:00+09:00","f":1e-3,"s":"a\\"b"}\n{"id":1.0}\n{"id":"2"}\n')
    put("decode", b"\xff" + b"id BIGINT, m MAP<STRING, ARRAY<STRUCT<a: INT>>>, d DECIMAL(38, 10)")
    # Module uploads: a real component cut short, and not a component at all (scripts/fuzz.sh
    # adds a whole one, built from source, at run time: a built binary is not committed).
    module = (ROOT / "examples/modules/pass_through.wasm").read_bytes()
    put("module_upload", b"\x00" + module[:200])
    put("module_upload", b"\x00\x00asm\x01\x00\x00\x00")
    put("module_upload", b"\x03" + b"\x00asm\x0d\x00\x01\x00")
    # What a guest hands the host: a schema message and a few node streams.
    put("guest", b"\x00" + bytes.fromhex("1000000000000a000c000a00090004000a0000001000000000010400080008000000040008000000040000000100000014000000"))
    for n in range(6):
        put("guest", bytes([n % 4]) + bytes(range(n * 7, n * 7 + 40)))
    # Checkpoint entries, as real runs wrote them, with the entry's kind first.
    if ckpt:
        agg, profile = ckpt / "agg", ckpt / "profile"
        entries = [
            (0, agg / "ckpt/offsets/0"),
            (1, agg / "ckpt/commits/0"),
            (2, agg / "ckpt/metadata"),
            (3, agg / "ckpt/sources/0/0"),
            (4, agg / "ckpt/state/aggregate/1/0.delta"),
            (5, agg / "ckpt/state/aggregate/1/1.delta"),
            (6, agg / "ckpt/state/aggregate/layout.json"),
            (7, profile / "state/processor/0/0.delta"),
            (8, profile / "state/processor/0/3.delta"),
            (9, profile / "state/processor/layout.json"),
            (10, agg / "out/_sluice_metadata/0"),
        ]
        for kind, path in entries:
            put("checkpoint", bytes([kind]) + path.read_bytes())


main()
