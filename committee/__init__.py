"""committee package."""
