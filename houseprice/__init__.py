"""houseprice: value houses from attributes plus satellite tiles, and explain why on a map.

Subpackages: ``data`` (records, tiles, generators, loaders), ``vision`` (CNNs, siamese
training, feature extraction), ``pricing`` (regressors, metrics, lift), ``explain`` (generic
CNN explainers; imports nothing else from houseprice), ``maps`` (offline folium maps),
``bench`` (benchmark runners).
"""

__version__ = "0.1.0"
