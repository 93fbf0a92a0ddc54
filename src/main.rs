//! Thin edge: parse arguments, start tracing, dispatch.

fn main() -> anyhow::Result<()> {
    Ok(())
}
