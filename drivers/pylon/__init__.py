"""Basler cameras over pypylon (and the pylon camera emulator); `settings` is pure."""
