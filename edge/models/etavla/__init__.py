"""ETA-VLA: a driving policy that prunes its own visual tokens inside the graph (see card.py, net.py)."""
