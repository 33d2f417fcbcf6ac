/* houseprice valuation map: area overlays (inlined by houseprice.maps.layers when used).
 *
 * Reads the area JSON block written by Python (houseprice.maps.areas: per layer, the cells as
 * [south, west, north, east, fill colour, tooltip] and the legend HTML, both escaped in
 * Python) and builds one toggleable layer per statistic. The cells live in their own pane
 * below the markers; while a layer is shown its legend is appended to the map's legend box.
 * Entry point (called by houseprice.maps.layers): window.houseprice.areaLayer.
 */
(function () {
  "use strict";

  var AREA_PANE = "hp-areas";
  var blocks = {};  // parsed JSON per data element id

  function areaData(dataId) {
    if (!blocks[dataId]) {
      blocks[dataId] = JSON.parse(document.getElementById(dataId).textContent);
    }
    return blocks[dataId];
  }

  function areaPane(map) {
    var pane = map.getPane(AREA_PANE);
    if (!pane) {
      pane = map.createPane(AREA_PANE);
      pane.style.zIndex = 380;  // above heatmaps (350), below markers (overlayPane, 400)
    }
    return L.svg({ pane: AREA_PANE });
  }

  function legendBox(map) {
    return map.getContainer().querySelector(".hp-legend");
  }

  // The layer of statistic `key`; its legend shows while the layer is on the map.
  function areaLayer(map, dataId, key) {
    var data = areaData(dataId);
    var spec = data.layers[key];
    var renderer = areaPane(map);
    var layer = L.layerGroup(spec.cells.map(function (cell) {
      var rect = L.rectangle([[cell[0], cell[1]], [cell[2], cell[3]]], {
        pane: AREA_PANE, renderer: renderer, weight: 0.5, color: "#444", opacity: 0.6,
        fillColor: cell[4], fillOpacity: data.opacity, className: "hp-area-cell hp-area-" + key
      });
      rect.bindTooltip(cell[5], { sticky: true });  // escaped in Python
      return rect;
    }));
    var legend = document.createElement("div");
    legend.className = "hp-area-legend hp-area-legend-" + key;
    legend.innerHTML = spec.legend;  // escaped in Python
    layer.on("add", function () {
      var box = legendBox(map);
      if (box) { box.appendChild(legend); }
    });
    layer.on("remove", function () {
      if (legend.parentNode) { legend.parentNode.removeChild(legend); }
    });
    return layer;
  }

  window.houseprice = window.houseprice || {};
  window.houseprice.areaLayer = areaLayer;
})();
