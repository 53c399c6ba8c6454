"""The lane family: lightweight spatiotemporal lane detection (card, torch modules, data, training)."""
