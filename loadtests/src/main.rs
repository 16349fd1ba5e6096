//! chathub load generator. The scenarios (idle, chat, fanout, messenger, churn,
//! slow-consumer) arrive with the load-testing issue; this binary exists so the
//! workspace layout is settled now.
fn main() {
    eprintln!("loadtests: no scenarios yet; see the README's load-testing section");
}
