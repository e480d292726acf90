// Draw the student's graph and the expert graph with vis-network, as the student dashboard draws
// the same answers: node positions fixed (physics off), edge widths as answered.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var options = {
    physics: false,
    interaction: { dragNodes: false, zoomView: true },
    edges: { smooth: { enabled: true, type: "curvedCW", roundness: 0.15 } }
  };
  window.practableGraphs = {};
  document.querySelectorAll("div.graph[data-source]").forEach(function (el) {
    var answer = data[el.dataset.source];
    if (!answer) { return; }
    var nodes = new vis.DataSet(answer.nodes);
    var edges = new vis.DataSet(answer.edges.map(function (e, i) {
      var copy = Object.assign({ id: i }, e);
      return copy;
    }));
    var network = new vis.Network(el, { nodes: nodes, edges: edges }, options);
    window.practableGraphs[el.dataset.source] = { network: network, nodes: nodes, edges: edges };
  });
}());
