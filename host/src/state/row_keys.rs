//! Stored keys (Arrow's row format, as the state store keeps them) back to Arrow columns.
//!
//! Keys come back from state files, which a disk, a truncation or a hand can corrupt, and
//! arrow-row documents that bytes it did not produce "may panic" when decoded (a length
//! read from the bytes indexes past their end); it has no validating decoder, so decoding
//! runs [`crate::untrusted::guarded`] and such bytes are an error naming the state.

use arrow_array::ArrayRef;
use arrow_row::RowConverter;

/// Decodes `keys` (each produced by a converter of the same fields as `converter`, unless
/// the state is corrupt) into one column per field; corrupt bytes are an error, not a panic.
pub fn decode<'a>(
    converter: &RowConverter,
    keys: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<ArrayRef>, String> {
    let parser = converter.parser();
    match crate::untrusted::guarded(|| converter.convert_rows(keys.map(|k| parser.parse(k)))) {
        Ok(Ok(columns)) => Ok(columns),
        Ok(Err(e)) => Err(format!("stored keys do not decode: {e}")),
        Err(panic) => Err(format!(
            "stored key bytes are corrupt: they are not keys of this state's key columns ({panic})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_row::SortField;
    use arrow_schema::DataType;

    use super::*;

    #[test]
    fn keys_round_trip_and_corrupt_bytes_are_an_error() {
        let converter = RowConverter::new(vec![
            SortField::new(DataType::Utf8),
            SortField::new(DataType::Int64),
        ])
        .unwrap();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a", "bc"])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ];
        let rows = converter.convert_columns(&columns).unwrap();
        let back = decode(&converter, rows.iter().map(|r| r.data())).unwrap();
        assert_eq!(back, columns);
        // The bytes the checkpoint fuzz target found: a string's length past the key's end.
        let corrupt: &[u8] = &[2, 0x63, 0, 0, 0, 0, 0, 0, 0, 0x41];
        let e = decode(&converter, std::iter::once(corrupt)).unwrap_err();
        assert!(e.contains("stored key bytes are corrupt"), "{e}");
    }
}
