//! `ringtail-loadgen`, the load generator. It arrives with the "Load generator" issue; until then
//! this binary only says so.

fn main() {
    eprintln!("ringtail-loadgen: not built yet (see the Load generator issue).");
    std::process::exit(2);
}
