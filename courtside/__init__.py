"""courtside."""
