//! Test fixture: a foreachBatch handler that, per `config.behavior`:
//! - `post`: POSTs the batch's row count to `config.url` and fails unless it gets 200;
//! - `escape`: writes a file outside its granted directory (`../escaped.txt`);
//! - `write-flood`: writes the batch to the output `copy` again and again until refused;
//! - `file-flood`: writes 1 MiB files into its directory until refused, then ignores the
//!   refusal and returns success;
//! - `http-flood`: POSTs 1 MiB bodies to `config.url` until refused, then returns success;
//! - `huge-error`: fails with a 20 MB error message;
//! - `log-flood`: logs 100,000 lines and succeeds.

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
            "file-flood" => {
                let chunk = vec![7u8; 1 << 20];
                for i in 0.. {
                    if files::write_file(&format!("flood-{i}.bin"), &chunk).is_err() {
                        break;
                    }
                }
                Ok(())
            }
            "http-flood" => {
                let chunk = vec![b'x'; 1 << 20];
                loop {
                    if http::send("POST", &self.url, &[], &chunk).is_err() {
                        return Ok(());
                    }
                }
            }
            "huge-error" => Err(Error("e".repeat(20_000_000))),
            "log-flood" => {
                for i in 0..100_000 {
                    log::info(&format!("spam {i}"));
                }
                Ok(())
            }
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
