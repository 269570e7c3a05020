"""Framework-free helpers shared by every backend."""
