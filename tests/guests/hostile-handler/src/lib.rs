//! Test fixture: a foreachBatch handler that, per `config.behavior`:
//! - `post`: POSTs the batch's row count to `config.url` and fails unless it gets 200;
//! - `escape`: writes a file outside its granted directory (`../escaped.txt`);
//! - `write-flood`: writes the batch to the output `copy` again and again until refused.

use sluice_guest_sdk::prelude::*;

struct Probe {
    behavior: String,
    url: String,
}

impl Handler for Probe {
    fn init(config: &Config, _schema: SchemaRef) -> Result<Self, Error> {
        Ok(Probe {
            behavior: config["behavior"].as_str().unwrap_or("post").to_owned(),
            url: config["url"]
                .as_str()
                .unwrap_or("http://127.0.0.1:9/")
                .to_owned(),
        })
    }

    fn handle(&mut self, batch_id: u64, batch: RecordBatch) -> Result<(), Error> {
        match self.behavior.as_str() {
            "escape" => files::write_file("../escaped.txt", b"out of the sandbox"),
            "write-flood" => loop {
                sinks::write("copy", &batch)?;
            },
            _ => {
                let body = format!("{{\"batchId\":{batch_id},\"rows\":{}}}", batch.num_rows());
                let response = http::send(
                    "POST",
                    &self.url,
                    &[("content-type", "application/json")],
                    body.as_bytes(),
                )?;
                if response.status != 200 {
                    return Err(format!("POST {} answered {}", self.url, response.status).into());
                }
                Ok(())
            }
        }
    }
}

export_handler!(Probe);
