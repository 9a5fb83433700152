"""The cascade: code → generative → agentic → human, one engine and one class per tier."""
