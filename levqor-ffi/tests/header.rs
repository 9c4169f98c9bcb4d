//! `include/levqor.h` is generated from the code by cbindgen and committed; this test
//! regenerates it and fails on any difference. `LEVQOR_BLESS=1` rewrites it instead.

#[test]
fn the_committed_header_is_the_generated_one() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("config");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads the crate");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = format!("{dir}/include/levqor.h");
    if std::env::var_os("LEVQOR_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
    }
    let committed = std::fs::read(&path).expect("the header is committed");
    assert!(
        committed == generated,
        "include/levqor.h is stale: run `LEVQOR_BLESS=1 cargo test -p levqor-ffi --test header`"
    );
}
