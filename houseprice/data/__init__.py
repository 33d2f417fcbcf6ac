"""Real data and its contracts: house records and tiles (``houses``), CUB-200-2011 (``cub``)."""
