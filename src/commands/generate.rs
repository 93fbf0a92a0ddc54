//! `generate man|bash|zsh|fish|elvish|powershell [--dir DIR]`: the man pages and shell
//! completions, built from the same clap definition the binary parses with, so they never drift
//! from the real options.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, GenerateArgs, Generated};

use super::EXIT_OK;

const BIN: &str = "hotspot-ghl-sync";

pub fn run(args: &GenerateArgs) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    match (shell(args.what), &args.dir) {
        (Some(shell), None) => {
            clap_complete::generate(shell, &mut cmd, BIN, &mut std::io::stdout().lock());
        }
        (Some(shell), Some(dir)) => {
            create(dir)?;
            let path = clap_complete::generate_to(shell, &mut cmd, BIN, dir)
                .with_context(|| format!("writing {shell} completions into {}", dir.display()))?;
            println!("{}", path.display());
        }
        (None, None) => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("rendering the man page")?;
            std::io::stdout().lock().write_all(&page)?;
        }
        (None, Some(dir)) => {
            create(dir)?;
            // One page per command: `man hotspot-ghl-sync-sync` as git does it.
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing the man pages into {}", dir.display()))?;
            println!("{}", dir.display());
        }
    }
    Ok(EXIT_OK)
}

fn shell(what: Generated) -> Option<Shell> {
    match what {
        Generated::Man => None,
        Generated::Bash => Some(Shell::Bash),
        Generated::Zsh => Some(Shell::Zsh),
        Generated::Fish => Some(Shell::Fish),
        Generated::Elvish => Some(Shell::Elvish),
        Generated::Powershell => Some(Shell::PowerShell),
    }
}

fn create(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}
