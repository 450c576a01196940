//! Test fixture: a pass-through transform built against `sluice:pipeline@0.1.0` (the WIT in
//! `./wit`, as the guest SDK of the previous release had it). The host speaks 0.2.0 and must
//! refuse it — at upload and in `sluice run` — with a message that says how to rebuild.

wit_bindgen::generate!({
    world: "transformer",
    path: "wit",
});

struct Old;

impl exports::sluice::pipeline::transform::Guest for Old {
    fn init(_config: String, input_schema: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(input_schema)
    }

    fn process(batch: sluice::pipeline::arrow::Batch) -> Result<(), String> {
        sluice::pipeline::output::emit(&batch);
        Ok(())
    }
}

export!(Old);
