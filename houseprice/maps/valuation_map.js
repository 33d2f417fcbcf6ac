/* houseprice valuation map layers (inlined into the map by houseprice.maps.layers).
 *
 * Reads the JSON data block written by Python (houseprice.maps.payload) and builds:
 *  - markers: one circle marker per house, coloured by outcome, clustered above a threshold;
 *  - popups: built on first click, tile and heatmap thumbnails side by side + an info table;
 *  - heatmap overlays: image overlays at each tile's ground footprint, created lazily and
 *    only for the houses near the current view, so thousands of houses stay light;
 *  - the legend, and fitView, which fits the view to the houses once the controls exist.
 * Every string that reaches the page as HTML (house.info, house.label, data.legend) was
 * escaped in Python with html.escape; everything else is set through DOM properties.
 * Public entry points (called by houseprice.maps.layers): window.houseprice.houseLayers and
 * window.houseprice.fitView.
 */
(function () {
  "use strict";

  var HEATMAP_PANE = "hp-heatmaps";
  var popupPanPadding = null;  // bottom-right auto-pan padding of the popups (see fitView)

  // ---- popups -------------------------------------------------------------------------------

  function figure(image, caption, thumbPx) {
    var fig = document.createElement("figure");
    if (image) {
      var img = document.createElement("img");
      img.src = image[0];
      img.width = image[1];
      img.height = image[2];
      img.alt = caption;
      fig.appendChild(img);
    } else {
      var missing = document.createElement("div");
      missing.className = "hp-missing";
      missing.style.width = thumbPx + "px";
      missing.style.height = thumbPx + "px";
      missing.textContent = "no " + caption;
      fig.appendChild(missing);
    }
    var figcaption = document.createElement("figcaption");
    figcaption.textContent = caption;
    fig.appendChild(figcaption);
    return fig;
  }

  function popupContent(data, house) {
    var root = document.createElement("div");
    root.className = "hp-popup";
    var images = document.createElement("div");
    images.className = "hp-images";
    images.appendChild(figure(house.t >= 0 ? data.images[house.t] : null, "tile", data.thumbPx));
    images.appendChild(
      figure(house.h >= 0 ? data.images[house.h] : null, "relevance heatmap", data.thumbPx));
    root.appendChild(images);
    var info = document.createElement("div");
    info.className = "hp-info";
    info.innerHTML = house.info;  // escaped in Python
    root.appendChild(info);
    return root;
  }

  // The popup is built on first click. Auto-pan keeps an open popup clear of the right-hand
  // controls (legend, layer control): fitView sets the right padding once they exist
  // (Leaflet reads the array when panning).
  function bindHousePopup(marker, data, house) {
    var popupWidth = 2 * data.thumbPx + 40;
    marker.bindPopup(function () { return popupContent(data, house); },
      { minWidth: popupWidth, maxWidth: popupWidth + 120,
        autoPanPaddingTopLeft: [12, 12], autoPanPaddingBottomRight: popupPanPadding });
  }

  // ---- markers ------------------------------------------------------------------------------

  function clusterIcon(outcomes) {
    return function (cluster) {
      var counts = outcomes.map(function () { return 0; });
      cluster.getAllChildMarkers().forEach(function (marker) {
        counts[marker.options.hpOutcome] += 1;
      });
      var total = cluster.getChildCount();
      var stops = [];
      var done = 0;
      counts.forEach(function (count, i) {
        if (count === 0) { return; }
        var start = (360 * done) / total;
        done += count;
        stops.push(outcomes[i].color + " " + start + "deg " + (360 * done) / total + "deg");
      });
      var size = total < 10 ? 30 : total < 100 ? 36 : 44;
      var html = '<div class="hp-cluster" style="background: conic-gradient(' +
        stops.join(", ") + ')"><span>' + total + "</span></div>";
      return L.divIcon({ html: html, className: "hp-cluster-icon", iconSize: L.point(size, size) });
    };
  }

  function houseMarker(data, house) {
    var outcome = data.outcomes[house.o];
    var marker = L.circleMarker([house.lat, house.lon], {
      radius: 7, weight: 1.5, color: "#1f1f1f", fillColor: outcome.color, fillOpacity: 0.9,
      className: "hp-marker hp-" + outcome.key, hpOutcome: house.o
    });
    bindHousePopup(marker, data, house);
    marker.bindTooltip(house.label, { direction: "top", offset: [0, -6] });
    return marker;
  }

  function markerGroup(data, markers) {
    if (!data.cluster) { return L.featureGroup(markers); }
    var options = Object.assign({ iconCreateFunction: clusterIcon(data.outcomes) },
      data.clusterOptions);
    var group = L.markerClusterGroup(options);
    group.addLayers(markers);
    return group;
  }

  // ---- heatmap overlays ---------------------------------------------------------------------

  function createHeatmapPane(map) {
    var pane = map.createPane(HEATMAP_PANE);
    pane.style.zIndex = 350;  // above base tiles (200), below markers (overlayPane, 400)
    pane.style.pointerEvents = "none";
  }

  function footprint(house) {
    return L.latLngBounds([house.b[0], house.b[1]], [house.b[2], house.b[3]]);
  }

  function heatmapOverlay(data, house, bounds) {
    return L.imageOverlay(data.images[house.h][0], bounds, {
      pane: HEATMAP_PANE, opacity: data.heatmapOpacity, className: "hp-heatmap",
      interactive: false
    });
  }

  // Overlays exist only for houses within 1.5 views of the current one (checked on each move).
  function heatmapLayer(map, data) {
    var layer = L.layerGroup();
    var overlays = {};
    function refresh() {
      if (!map.hasLayer(layer)) { return; }
      var view = map.getBounds().pad(0.5);
      data.houses.forEach(function (house, i) {
        if (house.h < 0) { return; }
        var bounds = footprint(house);
        var overlay = overlays[i];
        if (view.intersects(bounds)) {
          if (!overlay) {
            overlay = heatmapOverlay(data, house, bounds);
            overlays[i] = overlay;
          }
          if (!layer.hasLayer(overlay)) { layer.addLayer(overlay); }
        } else if (overlay && layer.hasLayer(overlay)) {
          layer.removeLayer(overlay);
        }
      });
    }
    layer.on("add", refresh);
    map.on("moveend", refresh);
    return layer;
  }

  // ---- legend and view ----------------------------------------------------------------------

  function legend(map, html) {
    var control = L.control({ position: "topright" });
    control.onAdd = function () {
      var div = L.DomUtil.create("div", "hp-legend");
      div.innerHTML = html;  // escaped in Python
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    control.addTo(map);
    return control;
  }

  function houseExtent(houses) {
    return L.latLngBounds(houses.map(function (house) {
      return [[house.b[0], house.b[1]], [house.b[2], house.b[3]]];
    }).flat());
  }

  // Fit the view to the houses, keeping them clear of the controls in the right-hand column
  // (legend and layer control); called once every control has been added.
  function fitView(map, extent, maxZoom) {
    var column = map.getContainer().querySelector(".leaflet-top.leaflet-right");
    var right = column ? column.offsetWidth : 0;
    if (popupPanPadding) popupPanPadding[0] = right + 12;
    map.fitBounds(extent, { paddingTopLeft: [24, 24], paddingBottomRight: [right + 24, 24],
      maxZoom: maxZoom });
  }

  // ---- entry point --------------------------------------------------------------------------

  // Markers, heatmap layer and legend of the data block `dataId`; fitView uses `extent`.
  function houseLayers(map, dataId) {
    var data = JSON.parse(document.getElementById(dataId).textContent);
    createHeatmapPane(map);
    popupPanPadding = [12, 12];
    var markers = data.houses.map(function (house) { return houseMarker(data, house); });
    var group = markerGroup(data, markers);
    legend(map, data.legend);
    return { markers: group, heatmaps: heatmapLayer(map, data), extent: houseExtent(data.houses) };
  }

  window.houseprice = { houseLayers: houseLayers, fitView: fitView };
})();
