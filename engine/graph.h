// The functional model API, after Keras': inputs -> layer calls -> several named outputs.
//
//   ModelBuilder b;
//   Value x = b.input("image", {1, 28, 28});
//   Value z = layers::dense(128, Activation::ReLU)(layers::flatten()(x));
//   Model m = b.build({{"digit", layers::dense(10)(z)}, {"parity", layers::dense(2)(z)}});
//
// Shapes are checked at every call, so a layer wired to an incompatible tensor fails here,
// with the layer's name and both shapes, not in the middle of training.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/layer.h"

namespace polytask {

struct GraphValue {
  std::string name;  // the input's name, or the producing layer call's name
  Shape shape;       // per sample (no batch axis)
  int producer = -1;  // node index, -1 for a model input
};

struct GraphNode {
  std::shared_ptr<Layer> layer;
  std::vector<int> inputs;  // value ids
  int output = -1;          // value id
  int call_index = 0;       // how many earlier calls of the same layer object
};

struct Graph {
  std::vector<GraphValue> values;
  std::vector<GraphNode> nodes;  // in call order, which is a topological order
  std::vector<int> inputs;       // value ids of model inputs
  std::vector<std::shared_ptr<Layer>> layers;  // each layer object once, in first-call order
};

class Value {
 public:
  Value() = default;
  Value(std::shared_ptr<Graph> graph, int id) : graph_(std::move(graph)), id_(id) {}
  const Shape& shape() const { return graph_->values[id_].shape; }
  const std::string& name() const { return graph_->values[id_].name; }
  int id() const { return id_; }
  const std::shared_ptr<Graph>& graph() const { return graph_; }

 private:
  std::shared_ptr<Graph> graph_;
  int id_ = -1;
};

// A layer object that can be called on values; calling it twice shares its parameters.
// Optionally followed by a second layer (Keras' `activation=` argument), which becomes its own
// node named "<layer>_relu".
class LayerRef {
 public:
  LayerRef() = default;
  explicit LayerRef(std::shared_ptr<Layer> layer, std::shared_ptr<Layer> activation = nullptr)
      : layer_(std::move(layer)), activation_(std::move(activation)) {}

  Value operator()(const Value& x) const { return (*this)(std::vector<Value>{x}); }
  Value operator()(const std::vector<Value>& xs) const;

  Layer& layer() const { return *layer_; }
  const std::shared_ptr<Layer>& ptr() const { return layer_; }

 private:
  std::shared_ptr<Layer> layer_;
  std::shared_ptr<Layer> activation_;
};

struct NamedOutput {
  std::string name;
  Value value;
};

class Model {
 public:
  Model(std::shared_ptr<Graph> graph, std::vector<NamedOutput> outputs);

  const Graph& graph() const { return *graph_; }
  const std::vector<NamedOutput>& outputs() const { return outputs_; }
  const NamedOutput& output(const std::string& name) const;  // throws naming the known outputs
  int64_t parameter_count() const;
  // Keras-style summary: one line per layer call with its output shape and parameter count.
  std::string summary() const;

 private:
  std::shared_ptr<Graph> graph_;
  std::vector<NamedOutput> outputs_;
};

class ModelBuilder {
 public:
  ModelBuilder();
  // A model input: `shape` per sample, e.g. {1, 28, 28} for a grey image, {50} for features.
  Value input(const std::string& name, const Shape& shape);
  Model build(std::vector<NamedOutput> outputs) const;

 private:
  std::shared_ptr<Graph> graph_;
};

}  // namespace polytask
