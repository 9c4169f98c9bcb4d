//! Compiles `proto/levqor/v1/*.proto` with a pure-Rust protobuf compiler (no system `protoc`):
//! prost messages and tonic services, serde (proto3 JSON) impls for the messages, and the
//! encoded descriptor set that server reflection serves.

use protox::prost::Message as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut files: Vec<PathBuf> = std::fs::read_dir("proto/levqor/v1")?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "proto"));
    files.sort();
    let fds = protox::compile(&files, ["proto"])?;
    let descriptors = fds.encode_to_vec();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("levqor_descriptor.bin"), &descriptors)?;
    tonic_prost_build::configure()
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .ignore_unknown_fields()
        .preserve_proto_field_names()
        .build(&[".levqor"])?;
    Ok(())
}
