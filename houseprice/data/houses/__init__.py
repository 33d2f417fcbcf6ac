"""House records and tiles: the contract (schema), validated loading, tiles, Ames."""
