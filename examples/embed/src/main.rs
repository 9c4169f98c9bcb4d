//! `cargo run -p levqor-example-embed -- Ada` (in memory), or
//! `cargo run -p levqor-example-embed -- Ada sqlite:embed.db`

#[tokio::main]
async fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "world".into());
    let database_url = std::env::args().nth(2);
    let job = match levqor_example_embed::store(database_url.as_deref()).await {
        Ok(store) => levqor_example_embed::run(store, &name).await,
        Err(e) => Err(e),
    };
    match job {
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
