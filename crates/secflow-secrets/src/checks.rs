//! Small pure functions that judge a candidate secret.

/// Shannon entropy in bits per byte. Bytes, not characters: secrets are ASCII, and byte
/// counts need no decoding of possibly invalid UTF-8.
pub(crate) fn shannon_entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Structural placeholders that word lists miss: one repeated character (`********`), or
/// a value whose longest alphanumeric run is one repeated character (`ghp_0000...`,
/// `sk_live_xxxx...`), which no generator of real secrets produces.
pub(crate) fn is_placeholder_shape(secret: &[u8]) -> bool {
    let Some(&first) = secret.first() else {
        return true;
    };
    if secret.iter().all(|&b| b == first) {
        return true;
    }
    let longest = secret
        .split(|b| !b.is_ascii_alphanumeric())
        .fold(
            &[][..],
            |best, run| if run.len() > best.len() { run } else { best },
        );
    longest.len() >= 4 && longest.iter().all(|&b| b == longest[0])
}

/// `check = "jwt"`: the first segment must decode to a JSON object that names an `alg`
/// other than `none`. This keeps random dotted base64 (and unsigned tokens, which
/// authenticate nothing) out of the results without a JSON parser.
pub(crate) fn check_jwt(token: &[u8]) -> bool {
    let header = token.split(|&b| b == b'.').next().unwrap_or_default();
    let Some(json) = base64url_decode(header) else {
        return false;
    };
    let Ok(json) = std::str::from_utf8(&json) else {
        return false;
    };
    let json = json.trim();
    if !(json.starts_with('{') && json.ends_with('}')) {
        return false;
    }
    let Some(pos) = json.find("\"alg\"") else {
        return false;
    };
    let rest = json[pos + 5..].trim_start();
    let Some(rest) = rest.strip_prefix(':') else {
        return false;
    };
    let rest = rest.trim_start();
    let Some(rest) = rest.strip_prefix('"') else {
        return false;
    };
    let Some(end) = rest.find('"') else {
        return false;
    };
    let alg = &rest[..end];
    !alg.is_empty() && !alg.eq_ignore_ascii_case("none")
}

/// Decodes unpadded base64url (standard `+/` and `=` padding are accepted too).
pub(crate) fn base64url_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
