//! The COPY text codec over arbitrary bytes: splitting and decoding never panic, and what
//! `encode` writes decodes back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for raw in salvage_copy::fields(data) {
        let _ = salvage_copy::decode(raw);
        let _ = salvage_copy::decode_text(raw);
    }
    let mut encoded = Vec::new();
    salvage_copy::encode(Some(data), &mut encoded);
    assert!(!encoded.contains(&b'\t') && !encoded.contains(&b'\n'));
    let decoded = salvage_copy::decode(&encoded).expect("an encoded value is never NULL");
    assert_eq!(&*decoded, data);
    let row: Vec<&[u8]> = data.split(|&byte| byte == 0).collect();
    let mut line = Vec::new();
    salvage_copy::encode_row(row.iter().map(|field| Some(*field)), &mut line);
    let line = line.strip_suffix(b"\n").expect("a row ends with a newline");
    let back: Vec<Vec<u8>> = salvage_copy::fields(line)
        .map(|raw| salvage_copy::decode(raw).expect("not NULL").into_owned())
        .collect();
    assert_eq!(back, row);
});
