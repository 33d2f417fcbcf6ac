"""The synthetic city: a procedurally generated city with price drivers visible in its tiles."""
