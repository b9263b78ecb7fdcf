//! Properties of the COPY text codec over arbitrary bytes and rows: what `encode` writes,
//! `decode` reads back; what `encode_row` writes, `fields` splits back into the same fields;
//! and no input makes either panic.

use proptest::collection::vec;
use proptest::prelude::*;
use salvage_copy::{decode, encode, encode_row, fields, is_null};

/// Bytes weighted towards the ones COPY treats specially.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        1 => prop::sample::select(vec![b'\\', b'\t', b'\n', b'\r', 0x08, 0x0c, 0x0b, b'N', b'.', b'x', b'0', b'7']),
    ]
}

fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.9, vec(byte(), 0..40))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_gives_the_value_back(value in vec(byte(), 0..200)) {
        let mut encoded = Vec::new();
        encode(Some(&value), &mut encoded);
        prop_assert!(!encoded.contains(&b'\t') && !encoded.contains(&b'\n'));
        prop_assert!(!is_null(&encoded));
        let decoded = decode(&encoded);
        prop_assert_eq!(decoded.as_deref(), Some(&value[..]));
    }

    #[test]
    fn encode_row_then_split_gives_the_row_back(row in vec(value(), 1..12)) {
        let mut line = Vec::new();
        encode_row(row.iter().map(Option::as_deref), &mut line);
        prop_assert_eq!(line.pop(), Some(b'\n'));
        prop_assert!(!line.contains(&b'\n'));
        let back: Vec<Option<Vec<u8>>> = fields(&line)
            .map(|raw| decode(raw).map(std::borrow::Cow::into_owned))
            .collect();
        prop_assert_eq!(back, row);
    }

    #[test]
    fn any_bytes_split_and_decode_without_panic(raw in vec(any::<u8>(), 0..300)) {
        let parts: Vec<&[u8]> = fields(&raw).collect();
        prop_assert_eq!(parts.len(), raw.split(|&byte| byte == b'\t').count());
        prop_assert_eq!(parts.join(&b'\t'), raw.clone());
        for part in parts {
            if let Some(value) = decode(part) {
                // Unescaping never makes a value longer.
                prop_assert!(value.len() <= part.len());
                if !part.contains(&b'\\') {
                    prop_assert_eq!(&*value, part);
                }
            } else {
                prop_assert!(is_null(part));
            }
        }
    }
}
