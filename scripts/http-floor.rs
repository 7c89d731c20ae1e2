//! The floor under `gears smoke`'s start-up figures (scripts/bench-smoke.sh): a program that
//! does nothing but N bare HTTP/1.1 GETs to 127.0.0.1:PORT on J keep-alive connections, one
//! thread each, with blocking std sockets: no YAML, no HTTP library, no checks, no report. It
//! reads each response only as far as its `Content-Length` says. Whatever this takes on a
//! machine, no smoke runner doing the same requests can take less there.
//!
//! Usage: http-floor PORT N J    (built by bench-smoke.sh with `rustc -O`; std only)
use std::io::{Read, Write};
use std::net::TcpStream;

fn requests(port: u16, first: usize, count: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; 64 * 1024];
    for i in first..first + count {
        let req = format!("GET /health/{i} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        s.write_all(req.as_bytes()).expect("write");
        let mut got = 0;
        loop {
            let k = s.read(&mut buf[got..]).expect("read");
            assert!(k > 0, "the server closed the connection");
            got += k;
            let Some(end) = buf[..got].windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .expect("a Content-Length header")
                .trim()
                .parse()
                .expect("a number");
            if got >= end + 4 + len {
                break;
            }
        }
    }
}

fn main() {
    let arg = |i: usize| -> usize {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .expect("usage: http-floor PORT N J")
    };
    let (port, n, jobs) = (arg(1) as u16, arg(2), arg(3).max(1));
    let threads: Vec<_> = (0..jobs)
        .map(|j| {
            let (first, count) = (j * n / jobs, (j + 1) * n / jobs - j * n / jobs);
            std::thread::spawn(move || requests(port, first, count))
        })
        .collect();
    for t in threads {
        t.join().expect("a request thread failed");
    }
}
