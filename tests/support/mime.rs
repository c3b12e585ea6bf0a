//! Independent checks of a built message: every line within RFC 5322's 998 octets, and
//! Python's `email` package, in strict mode, finding no defect.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Where `raw` has a line (CRLF excluded) over 998 octets or a lone CR or LF, if anywhere.
pub fn overlong_line(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    for (i, line) in text.split("\r\n").enumerate() {
        if line.len() > 998 {
            return Some(format!("line {} has {} octets: {:.80}…", i + 1, line.len(), line));
        }
        if line.contains(['\r', '\n']) {
            return Some(format!("bare CR or LF on line {}", i + 1));
        }
    }
    None
}

/// Python re-parses each message with `email.policy.strict` (which raises on the first
/// defect it registers) and reads every part; returns one line per defect of any part or
/// header, prefixed by the message's index. Empty: none. One Python process for them all.
///
/// A message whose addresses have a non-ASCII local part is RFC 6532 UTF-8: it is read as
/// text with a `utf8=True` policy. Python flags such a local part as `NonASCIILocalPartDefect`
/// whatever the policy (CPython gh-81074, fixed in a later parser): that defect is the
/// parser's limit, not the message's, and is not reported.
pub fn python_defects(messages: &[Vec<u8>]) -> String {
    const SCRIPT: &str = r#"
import email, email.policy, sys
data = sys.stdin.buffer.read()
strict = email.policy.strict
lenient = strict.clone(raise_on_defect=False)
i = 0
n = 0
while i < len(data):
    size = int(data[i:data.index(b"\n", i)])
    i = data.index(b"\n", i) + 1
    raw, i = data[i:i + size], i + size
    try:
        text = raw.decode("ascii")
        utf8 = False
    except UnicodeDecodeError:
        text = raw.decode("utf-8")
        utf8 = True
    try:
        if utf8:
            m = email.message_from_string(text, policy=lenient.clone(utf8=True))
        else:
            m = email.message_from_bytes(raw, policy=strict)
            m = email.message_from_bytes(raw, policy=lenient)
        for part in m.walk():
            for d in part.defects:
                print(n, part.get_content_type(), type(d).__name__, d)
            for k, v in part.items():
                for d in getattr(v, "defects", ()):
                    if utf8 and type(d).__name__ == "NonASCIILocalPartDefect":
                        continue
                    print(n, k, type(d).__name__, d)
            if not part.is_multipart():
                part.get_content()
    except Exception as e:
        print(n, "raised", type(e).__name__, e)
    n += 1
"#;
    let mut input = Vec::new();
    for m in messages {
        input.extend_from_slice(format!("{}\n", m.len()).as_bytes());
        input.extend_from_slice(m);
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("python3 runs");
    writer.join().expect("writer").expect("write to python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
