//! What the views point at: the prompt and token shown, the patch and token under the pointer, the
//! two prompts pinned for comparison.

/// The selection every view reads; panels change it only through commands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Index into the prompt list of the prompt whose maps are shown.
    pub prompt: usize,
    /// The token the user chose (None: the first content word of the selected prompt).
    pub token: Option<usize>,
    /// Token under the pointer this frame (chips or matrix), shown instead of the selection.
    pub hovered_token: Option<usize>,
    /// Patch under the pointer this frame (image or matrix row), 0-based, CLS excluded.
    pub hovered_patch: Option<usize>,
    /// The prompts pinned as A and B for the compare view.
    pub pinned: [Option<usize>; 2],
    /// The word compared in the compare view (None: EOS).
    pub compare_word: Option<String>,
    /// The prompt whose SmartCLIP mask the masks view compares with the selected one.
    pub mask_other: Option<usize>,
}

impl Selection {
    /// Pins prompt `prompt` in `slot` (0: A, 1: B), or unpins it if it is already there.
    /// Returns whether both slots are now pinned.
    pub fn toggle_pin(&mut self, slot: usize, prompt: usize) -> bool {
        if let Some(pin) = self.pinned.get_mut(slot) {
            *pin = if *pin == Some(prompt) {
                None
            } else {
                Some(prompt)
            };
        }
        self.pinned.iter().all(Option::is_some)
    }

    /// The prompt list was shortened or reordered (now `len` prompts): pins no longer name the
    /// same prompts, and the selected index must stay inside the list.
    pub fn prompts_changed(&mut self, len: usize) {
        self.pinned = [None, None];
        self.prompt = self.prompt.min(len.saturating_sub(1));
    }

    /// Forgets what was under the pointer (at the start of each frame).
    pub fn clear_hover(&mut self) {
        self.hovered_token = None;
        self.hovered_patch = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_toggles_and_reports_both_slots() {
        let mut s = Selection::default();
        assert!(!s.toggle_pin(0, 2));
        assert!(s.toggle_pin(1, 0));
        assert_eq!(s.pinned, [Some(2), Some(0)]);
        assert!(
            !s.toggle_pin(0, 2),
            "pinning the same prompt again unpins it"
        );
        assert_eq!(s.pinned, [None, Some(0)]);
        assert!(!s.toggle_pin(5, 1), "no third slot");
    }

    #[test]
    fn a_shorter_prompt_list_clamps_the_selection_and_drops_pins() {
        let mut s = Selection {
            prompt: 4,
            pinned: [Some(1), Some(4)],
            ..Selection::default()
        };
        s.prompts_changed(3);
        assert_eq!((s.prompt, s.pinned), (2, [None, None]));
        s.prompts_changed(0);
        assert_eq!(s.prompt, 0);
    }
}
