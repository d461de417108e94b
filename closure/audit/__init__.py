"""Audit: which packages an image's files come from, SBOMs, diffs, reports, inspection."""
