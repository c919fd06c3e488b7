//! The unlock prompt: reads the store's passphrase (a keychain or key-file store needs
//! none: Enter on an empty prompt asks the daemon to unlock it) with every character shown
//! as `•`, and hands it over as a [`Passphrase`] once, on Enter. It owns only the typed text,
//! kept in a zeroizing buffer allocated once at full size (so typing never reallocates and
//! leaves a copy behind) and emptied the moment it is sent; dropping the prompt (Esc) wipes
//! it. Sending the request and showing the daemon's answer are the app's job.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;
use zeroize::Zeroizing;

use super::centered;
use crate::crypto::Passphrase;
use crate::tui::theme::Theme;

/// The longest passphrase the prompt takes, in bytes: the buffer's fixed capacity.
pub const MAX_PASSPHRASE_BYTES: usize = 256;

#[derive(Clone, PartialEq, Eq)]
pub struct UnlockPrompt {
    buffer: Zeroizing<String>,
    /// Sent, waiting for the daemon's answer.
    pub sending: bool,
    /// The daemon's answer to the last attempt, or the prompt's own complaint.
    pub error: Option<String>,
}

/// What a key did to the prompt.
#[derive(Debug, PartialEq, Eq)]
pub enum PromptKey {
    Edited,
    Submit(Passphrase),
    Cancel,
    Ignored,
}

impl Default for UnlockPrompt {
    fn default() -> Self {
        UnlockPrompt {
            buffer: Zeroizing::new(String::with_capacity(MAX_PASSPHRASE_BYTES)),
            sending: false,
            error: None,
        }
    }
}

impl std::fmt::Debug for UnlockPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnlockPrompt")
            .field("typed_chars", &self.typed_chars())
            .field("sending", &self.sending)
            .field("error", &self.error)
            .finish()
    }
}

impl UnlockPrompt {
    /// How many characters are typed (what the bullets show).
    pub fn typed_chars(&self) -> usize {
        self.buffer.chars().count()
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> PromptKey {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => PromptKey::Cancel,
            _ if self.sending => PromptKey::Ignored,
            // Empty is a valid answer: a keychain or key-file store needs no passphrase (the
            // daemon ignores it), and a passphrase store answers that it is wrong.
            KeyCode::Enter => {
                // The typed text moves into the passphrase (no copy); the prompt keeps an
                // empty buffer of the same fixed size for a retry.
                let typed = std::mem::replace(
                    &mut *self.buffer,
                    String::with_capacity(MAX_PASSPHRASE_BYTES),
                );
                self.sending = true;
                self.error = None;
                PromptKey::Submit(Passphrase::new(typed))
            }
            KeyCode::Backspace => {
                self.buffer.pop();
                PromptKey::Edited
            }
            KeyCode::Char('u') if ctrl => {
                self.buffer.clear();
                PromptKey::Edited
            }
            KeyCode::Char(c) if !ctrl => {
                if self.buffer.len() + c.len_utf8() > MAX_PASSPHRASE_BYTES {
                    self.error = Some(format!(
                        "a passphrase here is at most {MAX_PASSPHRASE_BYTES} bytes"
                    ));
                } else {
                    self.buffer.push(c);
                    self.error = None;
                }
                PromptKey::Edited
            }
            _ => PromptKey::Ignored,
        }
    }
}

pub fn draw(frame: &mut Frame, area: Rect, prompt: &UnlockPrompt, theme: &Theme) {
    let popup = centered(area, 60, 9);
    // Bullets only, and never more than fit: the length is all the screen reveals.
    let shown = prompt
        .typed_chars()
        .min(popup.width.saturating_sub(16) as usize);
    let status = match (&prompt.error, prompt.sending) {
        (_, true) => Line::styled("unlocking…", theme.dim()),
        (Some(e), false) => Line::styled(e.as_str(), theme.error()),
        (None, false) => Line::raw(""),
    };
    let lines = vec![
        Line::raw("The store is locked: records wait until it is opened."),
        Line::styled(
            "A keychain or key-file store needs none: press Enter.",
            theme.dim(),
        ),
        Line::from(vec![
            Span::styled("Passphrase: ", theme.title()),
            Span::raw("•".repeat(shown)),
            Span::styled("▏", theme.key()),
        ]),
        status,
        Line::raw(""),
        Line::from(vec![
            Span::styled("Enter", theme.key()),
            Span::raw(" unlock   "),
            Span::styled("Esc", theme.key()),
            Span::raw(" cancel   "),
            Span::styled("Ctrl+U", theme.key()),
            Span::raw(" clear"),
        ]),
    ];
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(
            Block::bordered()
                .title(" Unlock the store ")
                .border_style(theme.warn()),
        ),
        popup,
    );
}
