#[path = "../benches/common/mod.rs"]
mod common;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let conf = common::write_regex_config(n);
    let l = common::load(&conf);
    let set = l.rules.as_ref().unwrap();
    let reqs = common::regex_requests(n, 4096);
    let mut c = 0;
    let t = std::time::Instant::now();
    for i in 0..3_000_000 {
        if let pingora_redirect::rules::Decision::Redirect(r) =
            set.decide(&common::view(&reqs[i & 4095]))
        {
            c += r.location.len();
        }
    }
    println!("{:?}/op {c}", t.elapsed() / 3_000_000);
}
