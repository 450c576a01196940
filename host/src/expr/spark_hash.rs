//! Spark's `hash(a, b, ...)`: Murmur3 x86 32-bit with seed 42, each argument hashed with the
//! previous one's hash as its seed (a null leaves it unchanged), as Spark's `Murmur3Hash`
//! does — including Spark's own treatment of a string's last 1–3 bytes (each mixed as a
//! signed byte, not as Murmur3's tail), so the values match Spark's exactly (checked against
//! pyspark by tests/spark_conformance.rs). Neither DataFusion nor datafusion-spark has it, and
//! the murmur3 crates implement the standard tail, which gives other values.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, Int32Array};
use arrow_schema::{DataType, TimeUnit};
use datafusion_common::{Result, plan_err};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// Spark's seed for `hash`.
const SEED: i32 = 42;

fn mix_k1(k1: i32) -> i32 {
    (k1.wrapping_mul(0xcc9e_2d51_u32 as i32))
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593)
}

fn mix_h1(h1: i32, k1: i32) -> i32 {
    (h1 ^ k1)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64_u32 as i32)
}

fn fmix(h1: i32, length: i32) -> i32 {
    let mut h = (h1 ^ length) as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as i32
}

fn hash_int(v: i32, seed: i32) -> i32 {
    fmix(mix_h1(seed, mix_k1(v)), 4)
}

fn hash_long(v: i64, seed: i32) -> i32 {
    let h1 = mix_h1(seed, mix_k1(v as i32));
    fmix(mix_h1(h1, mix_k1((v >> 32) as i32)), 8)
}

/// Spark's `hashUnsafeBytes`.
fn hash_bytes(bytes: &[u8], seed: i32) -> i32 {
    let aligned = bytes.len() - bytes.len() % 4;
    let mut h1 = seed;
    for word in bytes[..aligned].chunks_exact(4) {
        let k = i32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        h1 = mix_h1(h1, mix_k1(k));
    }
    for &b in &bytes[aligned..] {
        h1 = mix_h1(h1, mix_k1(i32::from(b as i8)));
    }
    fmix(h1, bytes.len() as i32)
}

/// Folds one column into the running hashes.
fn fold(column: &ArrayRef, hashes: &mut [i32]) -> Result<()> {
    macro_rules! each {
        ($array:expr, $hash:expr) => {{
            let a = $array;
            for (row, h) in hashes.iter_mut().enumerate() {
                if a.is_valid(row) {
                    *h = $hash(a.value(row), *h);
                }
            }
        }};
    }
    match column.data_type() {
        DataType::Boolean => each!(column.as_boolean(), |v: bool, s| hash_int(i32::from(v), s)),
        DataType::Int8 => each!(column.as_primitive::<Int8Type>(), |v: i8, s| hash_int(
            i32::from(v),
            s
        )),
        DataType::Int16 => each!(column.as_primitive::<Int16Type>(), |v: i16, s| hash_int(
            i32::from(v),
            s
        )),
        DataType::Int32 => each!(column.as_primitive::<Int32Type>(), hash_int),
        DataType::Date32 => each!(column.as_primitive::<Date32Type>(), hash_int),
        DataType::Int64 => each!(column.as_primitive::<Int64Type>(), hash_long),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            each!(column.as_primitive::<TimestampMicrosecondType>(), hash_long)
        }
        // Spark hashes -0.0 as 0.0.
        DataType::Float32 => each!(column.as_primitive::<Float32Type>(), |v: f32, s| {
            hash_int((if v == 0.0 { 0.0f32 } else { v }).to_bits() as i32, s)
        }),
        DataType::Float64 => each!(column.as_primitive::<Float64Type>(), |v: f64, s| {
            hash_long((if v == 0.0 { 0.0f64 } else { v }).to_bits() as i64, s)
        }),
        DataType::Utf8 => each!(column.as_string::<i32>(), |v: &str, s| hash_bytes(
            v.as_bytes(),
            s
        )),
        DataType::LargeUtf8 => each!(column.as_string::<i64>(), |v: &str, s| hash_bytes(
            v.as_bytes(),
            s
        )),
        DataType::Binary => each!(column.as_binary::<i32>(), hash_bytes),
        other => return plan_err!("hash of a {other} is not supported"),
    }
    Ok(())
}

/// `hash(a, b, ...)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct SparkHash {
    signature: Signature,
}

impl SparkHash {
    pub(super) fn new() -> SparkHash {
        SparkHash {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SparkHash {
    fn name(&self) -> &str {
        "hash"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        for t in arg_types {
            if !matches!(
                t,
                DataType::Boolean
                    | DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::Date32
                    | DataType::Timestamp(TimeUnit::Microsecond, _)
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Binary
                    | DataType::Null
            ) {
                return plan_err!("hash of a {t} is not supported");
            }
        }
        Ok(DataType::Int32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut hashes = vec![SEED; args.number_rows];
        for arg in &args.args {
            let column = arg.clone().into_array(args.number_rows)?;
            if column.data_type() != &DataType::Null {
                fold(&column, &mut hashes)?;
            }
        }
        Ok(ColumnarValue::Array(Arc::new(Int32Array::from(hashes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_spark_s() {
        // pyspark 4.0.1: SELECT hash('Seoul'), hash(42), hash(CAST(42 AS BIGINT)),
        // hash('a', 1), hash(1.5D), hash(true), hash('abcdefg').
        assert_eq!(hash_bytes(b"Seoul", SEED), 710_460_358);
        assert_eq!(hash_int(42, SEED), 29_417_773);
        assert_eq!(hash_long(42, SEED), 1_316_951_768);
        assert_eq!(hash_int(1, hash_bytes(b"a", SEED)), 532_252_686);
        assert_eq!(hash_long(1.5f64.to_bits() as i64, SEED), 1_290_763_749);
        assert_eq!(hash_int(1, SEED), -559_580_957);
        assert_eq!(hash_bytes(b"abcdefg", SEED), 2_132_013_596);
    }
}
