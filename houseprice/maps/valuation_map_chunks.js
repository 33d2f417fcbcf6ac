/* houseprice folder map: houses in spatial chunks, loaded when in view (inlined into a folder
 * map's index.html by houseprice.maps.layers, after valuation_map.js).
 *
 * The page's JSON block (houseprice.maps.render / folder) holds one summary per chunk: file,
 * footprint bounds, house count, counts per outcome, centre. At load each chunk is one
 * overview icon (the outcome ring of a marker cluster, with its count); clicking it zooms to the
 * chunk. Once at most `viewBudget` houses lie in the chunks intersecting the (padded) view,
 * those chunks are loaded by adding a <script src="data/chunk_NNNN.js"> tag (works from
 * file:// with no server), which calls window.houseprice.registerChunk(id, {images, houses});
 * their houses replace their icons as (clustered) markers. Chunks that leave the view go back
 * to icons; beyond twice the budget, houses of chunks out of view are dropped from memory.
 * Thumbnails are image files: the browser loads them when a popup opens or an overlay is
 * drawn. House records are those of a single-file map (house.info / house.label escaped in
 * Python). The popup, marker and cluster-icon helpers mirror valuation_map.js, whose bytes are
 * kept stable for single-file maps.
 * Entry points: window.houseprice.chunkedLayers and window.houseprice.registerChunk.
 */
(function () {
  "use strict";

  var HEATMAP_PANE = "hp-heatmaps";
  var chunksById = {};  // id -> chunk state, for registerChunk

  // ---- popups and markers (as in valuation_map.js) ------------------------------------------

  function figure(image, caption, thumbPx) {
    var fig = document.createElement("figure");
    if (image) {
      var img = document.createElement("img");
      img.src = image[0];  // relative file URL: loaded now, when the popup opens
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

  function popupContent(data, chunk, house) {
    var root = document.createElement("div");
    root.className = "hp-popup";
    var images = document.createElement("div");
    images.className = "hp-images";
    images.appendChild(figure(house.t >= 0 ? chunk.images[house.t] : null, "tile", data.thumbPx));
    images.appendChild(figure(house.h >= 0 ? chunk.images[house.h] : null, "relevance heatmap",
      data.thumbPx));
    root.appendChild(images);
    var info = document.createElement("div");
    info.className = "hp-info";
    info.innerHTML = unpack(data, house.info);  // escaped in Python
    root.appendChild(info);
    return root;
  }

  // Expand the packed popup HTML (houseprice.maps.folder.pack_info): "<" + token -> fragment.
  function unpack(data, packed) {
    return packed.replace(data.tokenPattern, function (match, token) {
      return data.fragments[data.tokens.indexOf(token)];
    });
  }

  // The tile's ground footprint (as houseprice.maps.payload.tile_footprint_bounds).
  function footprint(data, house) {
    var halfLat = (data.tileMeters / 2 / 6371008.8) * 180 / Math.PI;
    var halfLon = halfLat / Math.cos(house.lat * Math.PI / 180);
    return L.latLngBounds([house.lat - halfLat, house.lon - halfLon],
      [house.lat + halfLat, house.lon + halfLon]);
  }

  function rightColumnWidth(map) {
    var column = map.getContainer().querySelector(".leaflet-top.leaflet-right");
    return column ? column.offsetWidth : 0;
  }

  function houseMarker(map, data, chunk, house) {
    var outcome = data.outcomes[house.o];
    var marker = L.circleMarker([house.lat, house.lon], {
      radius: 7, weight: 1.5, color: "#1f1f1f", fillColor: outcome.color, fillOpacity: 0.9,
      className: "hp-marker hp-" + outcome.key, hpOutcome: house.o
    });
    var popupWidth = 2 * data.thumbPx + 40;
    marker.bindPopup(function () { return popupContent(data, chunk, house); },
      { minWidth: popupWidth, maxWidth: popupWidth + 120, autoPanPaddingTopLeft: [12, 12],
        autoPanPaddingBottomRight: [rightColumnWidth(map) + 12, 12] });
    marker.bindTooltip(house.label, { direction: "top", offset: [0, -6] });
    return marker;
  }

  function ring(outcomes, counts, total, size, extraClass) {
    var stops = [];
    var done = 0;
    counts.forEach(function (count, i) {
      if (count === 0) { return; }
      var start = (360 * done) / total;
      done += count;
      stops.push(outcomes[i].color + " " + start + "deg " + (360 * done) / total + "deg");
    });
    var html = '<div class="hp-cluster" style="background: conic-gradient(' +
      stops.join(", ") + ')"><span>' + total.toLocaleString("en") + "</span></div>";
    return L.divIcon({ html: html, className: "hp-cluster-icon" + extraClass,
      iconSize: L.point(size, size) });
  }

  function clusterIcon(outcomes) {
    return function (cluster) {
      var counts = outcomes.map(function () { return 0; });
      cluster.getAllChildMarkers().forEach(function (marker) {
        counts[marker.options.hpOutcome] += 1;
      });
      var total = cluster.getChildCount();
      return ring(outcomes, counts, total, total < 10 ? 30 : total < 100 ? 36 : 44, "");
    };
  }

  // ---- chunks -------------------------------------------------------------------------------

  // Overview icons that overlap are grouped; a group's ring sums its chunks' outcome counts.
  function overviewGroup(outcomes) {
    return L.markerClusterGroup({
      maxClusterRadius: 60, showCoverageOnHover: false, spiderfyOnMaxZoom: false,
      iconCreateFunction: function (cluster) {
        var counts = outcomes.map(function () { return 0; });
        cluster.getAllChildMarkers().forEach(function (icon) {
          icon.options.hpCounts.forEach(function (count, i) { counts[i] += count; });
        });
        var total = counts.reduce(function (a, b) { return a + b; }, 0);
        return ring(outcomes, counts, total, 60, " hp-chunk-icon");
      }
    });
  }

  function overviewIcon(map, data, chunk) {
    var meta = chunk.meta;
    var icon = L.marker(meta.c, {
      icon: ring(data.outcomes, meta.counts, meta.n, meta.n < 1000 ? 48 : 56, " hp-chunk-icon"),
      keyboard: false, hpCounts: meta.counts
    });
    icon.bindTooltip(meta.n.toLocaleString("en") + " houses: click or zoom in to show them",
      { direction: "top" });
    icon.on("click", function () { map.fitBounds(chunk.bounds, { maxZoom: data.fitMaxZoom }); });
    return icon;
  }

  function loadChunk(chunk) {
    if (chunk.state !== "idle") { return; }
    chunk.state = "loading";
    var script = document.createElement("script");
    script.src = chunk.meta.file;
    script.onload = function () { script.parentNode.removeChild(script); };
    document.head.appendChild(script);
  }

  function chunkedLayers(map, dataId) {
    var data = JSON.parse(document.getElementById(dataId).textContent);
    data.tokenPattern = new RegExp("<([" + data.tokens + "])", "g");
    var pane = map.createPane(HEATMAP_PANE);
    pane.style.zIndex = 350;  // above base tiles (200), below markers (overlayPane, 400)
    pane.style.pointerEvents = "none";

    var clusters = L.markerClusterGroup(Object.assign(
      { iconCreateFunction: clusterIcon(data.outcomes) }, data.clusterOptions));
    var overview = overviewGroup(data.outcomes);
    var markers = L.layerGroup([overview, clusters]);
    var heatmaps = L.layerGroup();
    var overlays = {};  // "chunk:index" -> image overlay
    var chunks = data.chunks.map(function (meta) {
      var chunk = { meta: meta, state: "idle", wanted: false, shown: false, markers: null,
        houses: null, images: null,
        bounds: L.latLngBounds([meta.b[0], meta.b[1]], [meta.b[2], meta.b[3]]) };
      chunk.icon = overviewIcon(map, data, chunk);
      overview.addLayer(chunk.icon);
      chunksById[meta.id] = chunk;
      return chunk;
    });

    function show(chunk) {
      var ready = chunk.state === "loaded";
      if (chunk.wanted && ready && !chunk.shown) {
        clusters.addLayers(chunk.markers);
        overview.removeLayer(chunk.icon);
        chunk.shown = true;
      } else if (!chunk.wanted && chunk.shown) {
        clusters.removeLayers(chunk.markers);
        chunk.shown = false;
      }
      if (!chunk.shown && !overview.hasLayer(chunk.icon)) { overview.addLayer(chunk.icon); }
    }

    function evict(loadedHouses) {
      chunks.forEach(function (chunk) {
        if (loadedHouses <= 2 * data.viewBudget) { return; }
        if (chunk.state === "loaded" && !chunk.wanted) {
          chunk.state = "idle";
          chunk.markers = chunk.houses = chunk.images = null;
          loadedHouses -= chunk.meta.n;
        }
      });
    }

    function refreshHeatmaps() {
      if (!map.hasLayer(heatmaps)) { return; }
      var view = map.getBounds().pad(0.5);
      var keep = {};
      chunks.forEach(function (chunk) {
        if (!chunk.shown || !view.intersects(chunk.bounds)) { return; }
        chunk.houses.forEach(function (house, i) {
          if (house.h < 0) { return; }
          var bounds = footprint(data, house);
          if (!view.intersects(bounds)) { return; }
          var key = chunk.meta.id + ":" + i;
          keep[key] = true;
          if (!overlays[key]) {
            overlays[key] = L.imageOverlay(chunk.images[house.h][0], bounds, {
              pane: HEATMAP_PANE, opacity: data.heatmapOpacity, className: "hp-heatmap",
              interactive: false });
          }
          if (!heatmaps.hasLayer(overlays[key])) { heatmaps.addLayer(overlays[key]); }
        });
      });
      Object.keys(overlays).forEach(function (key) {
        if (!keep[key]) { heatmaps.removeLayer(overlays[key]); delete overlays[key]; }
      });
    }

    function refresh() {
      var view = map.getBounds().pad(0.25);
      var inView = chunks.filter(function (chunk) { return view.intersects(chunk.bounds); });
      var total = inView.reduce(function (sum, chunk) { return sum + chunk.meta.n; }, 0);
      var detail = total <= data.viewBudget;
      var loadedHouses = 0;
      chunks.forEach(function (chunk) {
        chunk.wanted = detail && view.intersects(chunk.bounds);
        if (chunk.wanted) { loadChunk(chunk); }
        show(chunk);
        if (chunk.state === "loaded") { loadedHouses += chunk.meta.n; }
      });
      evict(loadedHouses);
      refreshHeatmaps();
    }

    function register(id, payload) {
      var chunk = chunksById[id];
      if (!chunk || chunk.state !== "loading") { return; }
      chunk.images = payload.images;
      chunk.houses = payload.houses;
      chunk.markers = payload.houses.map(function (house) {
        return houseMarker(map, data, chunk, house);
      });
      chunk.state = "loaded";
      show(chunk);
      refreshHeatmaps();
    }

    window.houseprice.registerChunk = register;
    window.houseprice.chunked = { map: map, chunks: chunks };  // handle for tests and debugging
    heatmaps.on("add", refreshHeatmaps);
    map.on("moveend", refresh);
    map.whenReady(function () { setTimeout(refresh, 0); });
    var extent = L.latLngBounds([data.extent[0], data.extent[1]], [data.extent[2], data.extent[3]]);
    legendControl(map, data.legend);
    return { markers: markers, heatmaps: heatmaps, extent: extent, chunks: chunks };
  }

  function legendControl(map, html) {
    var control = L.control({ position: "topright" });
    control.onAdd = function () {
      var div = L.DomUtil.create("div", "hp-legend");
      div.innerHTML = html;  // escaped in Python
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    control.addTo(map);
  }

  window.houseprice = window.houseprice || {};
  window.houseprice.chunkedLayers = chunkedLayers;
  window.houseprice.registerChunk = function () {};  // replaced by chunkedLayers
})();
