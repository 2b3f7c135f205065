// The layer catalogue, as factory functions returning callable LayerRefs (Keras' names and
// defaults: 'valid' padding, Glorot-uniform kernels, zero biases).
#pragma once

#include <string>

#include "engine/graph.h"
#include "kernels/conv2d.h"

namespace polytask::layers {

using kernels::Padding;

enum class Activation { None, ReLU };

struct Conv2DOptions {
  int64_t stride = 1;
  Padding padding = Padding::Valid;
  Activation activation = Activation::None;
  bool use_bias = true;
  std::string name;  // empty: conv2d, conv2d_1, ...
};
LayerRef conv2d(int64_t filters, int64_t kernel_size, Conv2DOptions options = {});

struct DenseOptions {
  Activation activation = Activation::None;
  bool use_bias = true;
  std::string name;
};
LayerRef dense(int64_t units, DenseOptions options = {});
inline LayerRef dense(int64_t units, Activation activation, std::string name = "") {
  return dense(units, DenseOptions{activation, true, std::move(name)});
}

// pool_size x pool_size windows; stride 0 means stride = pool_size (Keras' default).
LayerRef max_pool2d(int64_t pool_size = 2, int64_t stride = 0, std::string name = "");
LayerRef relu(std::string name = "");
LayerRef flatten(std::string name = "");
// Elementwise sum of inputs of equal shape (a residual skip).
LayerRef add(std::string name = "");
// Concatenation along the first per-sample axis (channels, or features).
LayerRef concat(std::string name = "");

// Keras BatchNormalization semantics: momentum 0.99, epsilon 1e-3 (see kernels/batchnorm.h).
struct BatchNormOptions {
  double momentum = 0.99;
  double epsilon = 1e-3;
  std::string name;
};
LayerRef batch_norm(BatchNormOptions options = {});
LayerRef dropout(double rate, std::string name = "");

}  // namespace polytask::layers
