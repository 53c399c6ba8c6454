"""The real-time loop around a bundle. So far: frame sources, the clip runner (ring buffer of
per-frame features) and the overlay writer used by ``edge run``; the threaded Pipeline with sync,
drop policies and stats follows (DESIGN.md section 6)."""
