//! Text cut to fit a cell, or wrapped under its label: the rules every screen uses, so a cut
//! value always ends in an ellipsis (`newbie@example.co` would read as another valid
//! address), a wrapped one keeps its indent, and control characters never reach the
//! terminal. Counts characters, as the rest of the TUI does.

/// `s` with control characters shown as spaces, cut to `width` characters with `…` as the
/// last one when it does not fit.
pub fn cut(s: &str, width: usize) -> String {
    let mut flat = s.chars().map(|c| if c.is_control() { ' ' } else { c });
    if s.chars().count() <= width {
        return flat.collect();
    }
    let mut out: String = flat.by_ref().take(width.saturating_sub(1)).collect();
    if width > 0 {
        out.push('…');
    }
    out
}

/// `s` in lines of at most `width` characters, broken between words where it can (a word
/// longer than a line is broken inside it); control characters become spaces. The caller
/// puts the label before the first line and the same indent before the others (a hanging
/// indent), so a wrapped value stays in its column. Always at least one line.
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut len = 0;
    for word in flat.split(' ').filter(|w| !w.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        if len > 0 && len + 1 + word.len() <= width {
            line.push(' ');
            line.extend(&word);
            len += 1 + word.len();
            continue;
        }
        if len > 0 {
            lines.push(std::mem::take(&mut line));
        }
        while word.len() > width {
            lines.push(word.drain(..width).collect());
        }
        len = word.len();
        line = word.into_iter().collect();
    }
    if len > 0 || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_breaks_between_words_and_inside_only_a_word_too_long() {
        assert_eq!(
            wrap("customer_conflict: email alan@example.com belongs", 20),
            ["customer_conflict:", "email", "alan@example.com", "belongs"]
        );
        assert_eq!(wrap("a b  c", 3), ["a b", "c"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(wrap("x\ny", 5), ["x y"]);
    }

    #[test]
    fn a_cut_value_ends_in_an_ellipsis_and_a_fitting_one_is_whole() {
        assert_eq!(cut("newbie@example.com", 17), "newbie@example.c…");
        assert_eq!(cut("newbie@example.com", 18), "newbie@example.com");
        assert_eq!(cut("Zoë\nX", 10), "Zoë X");
        assert_eq!(cut("abc", 1), "…");
        assert_eq!(cut("abc", 0), "");
    }
}
