"""Signalling protocol between server, carts and browsers: messages, states, client."""
