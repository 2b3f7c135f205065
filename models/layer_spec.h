// One [[layers]] entry of a model config, as parsed: what models/config.cpp builds a layer call
// from, and what models/sharing.cpp copies and rewires.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/layers.h"

namespace polytask::models {

enum class LayerType {
  Conv2D,
  MaxPool2D,
  Dense,
  ReLU,
  Flatten,
  Add,
  Concat,
  BatchNorm,
  Dropout,
  Softmax,
  Mixture,
  CrossStitch
};

struct LayerSpec {
  std::string name;
  LayerType type = LayerType::Dense;
  std::vector<std::string> inputs;  // names of model inputs or earlier layers
  std::string shares;  // the layer whose object this one calls again (its root); empty: none
  int64_t filters = 0, kernel = 0, units = 0;
  int64_t stride = 1;  // conv2d; for max_pool2d 0 means "= pool"
  int64_t pool = 2;
  layers::Padding padding = layers::Padding::Valid;
  layers::Activation activation = layers::Activation::None;
  bool use_bias = true;
  double rate = 0, momentum = 0.99, epsilon = 1e-3;
  double self_weight = 0.9;  // cross_stitch
};

}  // namespace polytask::models
