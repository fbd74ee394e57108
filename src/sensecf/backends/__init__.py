"""Text-in/text-out language model backends (embedded, local HF, OpenAI-compatible) and their cache."""
