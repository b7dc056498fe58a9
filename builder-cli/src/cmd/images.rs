//! `kiln images`: the named images in the store.
use std::path::PathBuf;
use std::process::ExitCode;

use builder_core::store::familiar_name;

/// Flags of `kiln images`.
#[derive(clap::Args)]
pub struct Args {
    /// Print only digests.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show full names (`docker.io/library/…`) and digests.
    #[arg(long)]
    pub no_trunc: bool,
}

/// Runs the subcommand.
pub fn run(root: Option<PathBuf>, args: Args) -> Result<ExitCode, String> {
    let store = super::open_store(root)?;
    let images = store.images().map_err(|e| e.to_string())?;
    if args.quiet {
        for i in images {
            println!("{}", i.descriptor.digest);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<50} {:<20} {:>12}", "NAME", "DIGEST", "SIZE");
    for i in images {
        let name = if args.no_trunc {
            i.name.as_str()
        } else {
            familiar_name(&i.name)
        };
        let digest = i.descriptor.digest.to_string();
        let digest = if args.no_trunc {
            digest
        } else {
            digest.chars().take(19).collect()
        };
        let size = image_size(&store, &i.descriptor);
        println!("{name:<50} {digest:<20} {size:>12}");
    }
    Ok(ExitCode::SUCCESS)
}

fn image_size(store: &builder_core::store::Store, d: &builder_core::image::Descriptor) -> String {
    match store.load_image(d, &builder_core::image::Platform::host()) {
        Ok((_, m, _)) => {
            let total: u64 = m.layers.iter().map(|l| l.size).sum::<u64>() + m.config.size;
            human(total)
        }
        Err(_) => "?".into(),
    }
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    let unit = UNITS.get(u).copied().unwrap_or("B");
    if u == 0 {
        format!("{n}{unit}")
    } else {
        format!("{v:.1}{unit}")
    }
}
