//! Spark's `explode(split(value, " "))`: each line of the string column `value` becomes one
//! row per word (lower-cased, punctuation trimmed), in a column `word`. More rows out than in.

use sluice_guest_sdk::arrow_array::builder::StringBuilder;
use sluice_guest_sdk::prelude::*;

struct WordCount {
    output: SchemaRef,
}

impl Transform for WordCount {
    fn init(_config: &Config, input: SchemaRef) -> Result<Self, Error> {
        if !matches!(
            input.field_with_name("value").map(|f| f.data_type()),
            Ok(DataType::Utf8)
        ) {
            return Err("the input needs a string column `value`".into());
        }
        Ok(WordCount {
            output: Arc::new(Schema::new(vec![Field::new("word", DataType::Utf8, false)])),
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Output) -> Result<(), Error> {
        let lines = column::<StringArray>(&batch, "value")?;
        let mut words = StringBuilder::with_capacity(lines.len() * 8, lines.values().len());
        let mut scratch = String::new();
        for line in lines.iter().flatten() {
            for word in line.split_whitespace() {
                let word = word.trim_matches(|c: char| !c.is_alphanumeric());
                if word.is_empty() {
                    continue;
                }
                scratch.clear();
                scratch.extend(word.chars().flat_map(char::to_lowercase));
                words.append_value(&scratch);
            }
        }
        out.emit(&RecordBatch::try_new(
            self.output.clone(),
            vec![Arc::new(words.finish())],
        )?)
    }
}

export_transform!(WordCount);
