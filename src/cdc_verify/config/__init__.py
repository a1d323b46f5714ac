"""Settings, the one typed object every command reads, and the servers it names."""
