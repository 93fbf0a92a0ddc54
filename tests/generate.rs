//! `generate`: completions and man pages come from the same argument definitions the binary
//! parses with, so a new command or flag appears in both without anyone writing it twice.

mod support;

use support::{BIN, Out, TempDir};

fn run(args: &[&str]) -> Out {
    let out = std::process::Command::new(BIN)
        .args(args)
        // No config file exists here: generating must not need one.
        .env("HGS_CONFIG", "/nonexistent/hotspot-ghl-sync.toml")
        .output()
        .expect("binary runs");
    Out::from_output(out)
}

#[test]
fn completions_name_every_command_and_flag() {
    let bash = run(&["generate", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.show());
    for word in ["explain", "calls", "--dry-run", "--failed", "--format"] {
        assert!(bash.stdout.contains(word), "bash completion lacks {word}");
    }
    let fish = run(&["generate", "fish"]);
    assert_eq!(fish.code, 0, "{}", fish.show());
    assert!(
        fish.stdout.contains("complete -c hotspot-ghl-sync"),
        "{}",
        fish.stdout
    );

    let dir = TempDir::new("generate-zsh");
    let zsh = run(&["generate", "zsh", "--dir", dir.0.to_str().unwrap()]);
    assert_eq!(zsh.code, 0, "{}", zsh.show());
    let file = std::fs::read_to_string(dir.path("_hotspot-ghl-sync")).expect("zsh file written");
    assert!(file.starts_with("#compdef hotspot-ghl-sync"), "{file}");
}

#[test]
fn man_pages_cover_the_program_and_each_command() {
    let man = run(&["generate", "man"]);
    assert_eq!(man.code, 0, "{}", man.show());
    assert!(
        man.stdout.starts_with(".ie"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(
        man.stdout.contains(".TH hotspot-ghl-sync 1"),
        "no title header"
    );
    assert!(
        man.stdout.contains("explain"),
        "the page lists the commands"
    );

    let dir = TempDir::new("generate-man");
    let out = run(&["generate", "man", "--dir", dir.0.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.show());
    for page in [
        "hotspot-ghl-sync.1",
        "hotspot-ghl-sync-sync.1",
        "hotspot-ghl-sync-explain.1",
    ] {
        let text = std::fs::read_to_string(dir.path(page)).unwrap_or_else(|_| panic!("{page}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    let sync = std::fs::read_to_string(dir.path("hotspot-ghl-sync-sync.1")).unwrap();
    assert!(sync.contains("dry"), "the sync page documents --dry-run");
}
