//! `cargo run -p levqor-example-embed -- Ada`

#[tokio::main]
async fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "world".into());
    match levqor_example_embed::run(&name).await {
        Ok(job) => println!(
            "{} -> {}",
            job.status.as_str(),
            job.result.unwrap_or_default()
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
