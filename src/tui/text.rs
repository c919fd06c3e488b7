//! Text cut to fit a cell: the one rule every screen uses, so a cut value always ends in an
//! ellipsis (`newbie@example.co` would read as another valid address) and control
//! characters never reach the terminal. Counts characters, as the rest of the TUI does.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_value_ends_in_an_ellipsis_and_a_fitting_one_is_whole() {
        assert_eq!(cut("newbie@example.com", 17), "newbie@example.c…");
        assert_eq!(cut("newbie@example.com", 18), "newbie@example.com");
        assert_eq!(cut("Zoë\nX", 10), "Zoë X");
        assert_eq!(cut("abc", 1), "…");
        assert_eq!(cut("abc", 0), "");
    }
}
