"""Reference implementations for the course chapters.

One small module per topic; each public function's docstring names the chapter that
introduces it. Chapters and assignment tests import from here instead of copying code.
"""
