//! A plain WASI command (`wasi:cli/run`): a real component, but of none of Sluice's worlds.

fn main() {
    println!("hello from another world");
}
