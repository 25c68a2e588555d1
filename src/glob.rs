//! Shell-style wildcards (`*` any run, `?` one character) for config patterns: environment
//! rules, canaries, allowlists. Case-sensitive, matched against the whole text.

/// True when `pattern` matches all of `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point per `*`: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*/prod/*", "vault:default/secret/prod/payments/db"));
        assert!(!matches("*/prod/*", "vault:default/secret/production/db"));
        assert!(matches("ci-*", "ci-runner-7"));
        assert!(!matches("ci-*", "xci-runner"));
        assert!(matches("a?c", "abc"));
        assert!(matches("*", ""));
        assert!(!matches("", "a"));
        assert!(matches("*a*b*c", "xxaxxbxxbxc"));
    }
}
