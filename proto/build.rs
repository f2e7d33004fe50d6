//! Generates the gRPC code from `slipway/v1/*.proto` with a vendored `protoc`, so a
//! fresh machine builds with no manual install. `$PROTOC` overrides the vendored one.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = ["slipway/v1/agent.proto", "slipway/v1/operator.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    // No generated `connect` constructors: they clash with the `Connect` RPC, and
    // every caller builds its own TLS channel anyway.
    tonic_prost_build::configure()
        .build_transport(false)
        .file_descriptor_set_path(out_dir.join("slipway_descriptor.bin"))
        .compile_with_config(config, &protos, &["."])?;
    Ok(())
}
