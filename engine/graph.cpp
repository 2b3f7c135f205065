#include "engine/graph.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

namespace polytask {

namespace {

// Keras-style automatic names: dense, dense_1, dense_2...
std::string unique_layer_name(const Graph& g, const std::string& base) {
  std::set<std::string> taken;
  for (const auto& l : g.layers) taken.insert(l->name());
  if (!taken.count(base)) return base;
  for (int i = 1;; ++i)
    if (auto candidate = cat(base, "_", i); !taken.count(candidate)) return candidate;
}

Value call_layer(const std::shared_ptr<Layer>& layer, const std::vector<Value>& xs) {
  if (xs.empty()) fail(layer->kind(), ": called with no inputs");
  const auto graph = xs.front().graph();
  if (!graph) fail(layer->kind(), ": called on an undefined value");
  for (const auto& x : xs)
    if (x.graph() != graph)
      fail(layer->name().empty() ? layer->kind() : layer->name(),
           ": inputs come from different model builders");

  const bool first_use = std::find(graph->layers.begin(), graph->layers.end(), layer) == graph->layers.end();
  if (first_use) {
    std::string name = layer->name().empty() ? layer->kind() : layer->name();
    if (layer->name().empty() || unique_layer_name(*graph, name) != name) {
      if (!layer->name().empty()) fail("two layers are named '", name, "'; layer names must be unique");
      name = unique_layer_name(*graph, name);
    }
    layer->set_name(name);
  }

  std::vector<Shape> shapes;
  for (const auto& x : xs) shapes.push_back(x.shape());
  const Shape out = layer->build(shapes);
  if (first_use) graph->layers.push_back(layer);

  GraphNode node;
  node.layer = layer;
  for (const auto& x : xs) node.inputs.push_back(x.id());
  node.call_index = int(std::count_if(graph->nodes.begin(), graph->nodes.end(),
                                      [&](const GraphNode& n) { return n.layer == layer; }));
  GraphValue value;
  value.name = node.call_index ? cat(layer->name(), "#", node.call_index) : layer->name();
  value.shape = out;
  value.producer = int(graph->nodes.size());
  node.output = int(graph->values.size());
  graph->values.push_back(value);
  graph->nodes.push_back(std::move(node));
  return Value(graph, int(graph->values.size()) - 1);
}

}  // namespace

Value LayerRef::operator()(const std::vector<Value>& xs) const {
  if (!layer_) fail("calling an empty layer reference");
  Value y = call_layer(layer_, xs);
  if (!activation_) return y;
  if (activation_->name().empty()) activation_->set_name(layer_->name() + "_" + activation_->kind());
  return call_layer(activation_, {y});
}

ModelBuilder::ModelBuilder() : graph_(std::make_shared<Graph>()) {}

Value ModelBuilder::input(const std::string& name, const Shape& shape) {
  if (name.empty()) fail("a model input needs a name");
  for (int id : graph_->inputs)
    if (graph_->values[id].name == name) fail("two model inputs are named '", name, "'");
  for (int64_t d : shape)
    if (d <= 0) fail("input '", name, "': every dimension must be positive, got ", shape);
  graph_->values.push_back(GraphValue{name, shape, -1});
  graph_->inputs.push_back(int(graph_->values.size()) - 1);
  return Value(graph_, int(graph_->values.size()) - 1);
}

Model ModelBuilder::build(std::vector<NamedOutput> outputs) const {
  return Model(graph_, std::move(outputs));
}

Model::Model(std::shared_ptr<Graph> graph, std::vector<NamedOutput> outputs)
    : graph_(std::move(graph)), outputs_(std::move(outputs)) {
  if (outputs_.empty()) fail("a model needs at least one output");
  std::set<std::string> names;
  for (const auto& o : outputs_) {
    if (o.value.graph() != graph_) fail("output '", o.name, "' does not come from this model's builder");
    if (!names.insert(o.name).second) fail("two model outputs are named '", o.name, "'");
  }
}

const NamedOutput& Model::output(const std::string& name) const {
  for (const auto& o : outputs_)
    if (o.name == name) return o;
  std::string known;
  for (const auto& o : outputs_) known += (known.empty() ? "" : ", ") + o.name;
  fail("the model has no output '", name, "' (outputs: ", known, ")");
}

int64_t Model::parameter_count() const {
  int64_t total = 0;
  for (const auto& layer : graph_->layers)
    for (const auto& p : layer->parameters())
      if (p->trainable) total += p->shape.numel();
  return total;
}

std::string Model::summary() const {
  std::ostringstream out;
  out << "Layer (call)                    Output shape        Params\n";
  std::set<const Layer*> counted;
  for (const auto& node : graph_->nodes) {
    int64_t params = 0;
    if (counted.insert(node.layer.get()).second)
      for (const auto& p : node.layer->parameters())
        if (p->trainable) params += p->shape.numel();
    const auto& v = graph_->values[node.output];
    std::string label = v.name + " (" + node.layer->kind() + ")";
    label.resize(std::max<size_t>(label.size() + 1, 32), ' ');
    std::string shape = v.shape.str();
    shape.resize(std::max<size_t>(shape.size() + 1, 20), ' ');
    out << label << shape << params << "\n";
  }
  out << "Total trainable parameters: " << parameter_count() << "\n";
  return out.str();
}

}  // namespace polytask
