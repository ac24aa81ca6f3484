"""Output-directory safety: one writer per directory, workers that die with their parent, one-folder names."""
