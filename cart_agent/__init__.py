"""The cart agent: the aiortc peer that captures, adapts and forwards the consultation media."""
